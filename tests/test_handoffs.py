"""The hand-offs between stages: a signal reaches its listeners in the order connected, and
each store notification reaches the hand-off its stage listens to."""

from __future__ import annotations

from engine.handoffs import Handoffs, Routed


def test_a_signal_calls_its_listeners_in_the_order_connected() -> None:
    heard: list[str] = []
    routed = Routed()
    routed()  # no listener yet: nothing happens
    routed.connect(lambda: heard.append("delivery"))
    routed.connect(lambda: heard.append("second"))
    routed()
    assert heard == ["delivery", "second"]


def test_each_store_notification_is_its_own_handoff() -> None:
    handoffs = Handoffs()
    heard: list[str] = []
    handoffs.store_received.connect(lambda: heard.append("router"))
    handoffs.store_routed.connect(lambda: heard.append("delivery"))
    handoffs.store_lease_released.connect(lambda: heard.append("leases"))
    for what in ("routed", "received", "lease", "something new"):
        handoffs.store_changed(what)
    assert heard == ["delivery", "router", "leases"]
