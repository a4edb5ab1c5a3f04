"""The admission policy's decisions at the limit, with an injected clock (the listener's
real-socket cases are in tests/test_listener.py, the real process's in
tests/test_listener_attacks.py)."""

from __future__ import annotations

from engine.inbound.slots import Admission, Phase, Slot
from engine.testing.clock import ManualClock


def admission(clock: ManualClock, max_connections: int = 2, per_address: int = 100) -> Admission:
    return Admission(max_connections, per_address, 1000.0, protect_s=30.0, clock=clock)


def admitted(policy: Admission, address: str = "10.0.0.1") -> Slot:
    slot = policy.admit(address).slot
    assert slot is not None
    return slot


def test_a_sender_idle_between_messages_outlives_a_trickling_and_a_silent_connection() -> None:
    clock = ManualClock()
    policy = admission(clock, max_connections=3)
    sender = admitted(policy)
    sender.completed(clock.now)  # then idle 20 ms between messages, as in the attack
    trickler = admitted(policy)
    trickler.block_started(clock.now, 1)
    clock.now += 1.0
    silent = admitted(policy)
    clock.now += 10.0
    trickler.block_bytes += 10  # a byte a second: never idle
    clock.now += 0.02
    first = policy.admit("10.0.0.1")
    assert (first.displaced, first.displaced_as) == (trickler, "never_completed")
    second = policy.admit("10.0.0.1")
    assert (second.displaced, second.displaced_as) == (silent, "never_completed")
    assert policy.census() == {"completing": 1, "never_completed": 2}


def test_a_block_arriving_at_speed_and_a_message_being_stored_are_never_displaced() -> None:
    clock = ManualClock()
    policy = admission(clock)
    fast = admitted(policy)
    fast.block_started(clock.now, 65536)
    storing = admitted(policy)
    storing.phase = Phase.HANDLING
    clock.now += 0.5
    assert policy.admit("10.0.0.9").refused == "max_connections"


def test_a_sender_that_completed_blocks_is_displaced_when_it_stalls_or_after_protect_s() -> None:
    clock = ManualClock()
    policy = admission(clock, max_connections=1)
    sender = admitted(policy)
    sender.completed(clock.now)
    clock.now += 29.0
    assert policy.admit("10.0.0.2").refused == "max_connections"  # completed lately
    sender.phase = Phase.WRITING  # its ACK is not read
    assert policy.admit("10.0.0.2").displaced_as == "ack_unread"
    slow = policy.admit("10.0.0.3").slot  # displaced the newcomer, which never completed
    assert slow is not None
    slow.completed(clock.now)
    slow.block_started(clock.now, 10)
    clock.now += 5.0
    assert policy.admit("10.0.0.4").displaced_as == "slow_block"
    idle = policy.admit("10.0.0.5").slot
    assert idle is not None
    idle.completed(clock.now)
    clock.now += 31.0
    assert policy.admit("10.0.0.6").displaced_as == "idle"


def test_never_completed_goes_before_stalled_and_the_oldest_first() -> None:
    clock = ManualClock()
    policy = admission(clock, max_connections=3)
    stalled = admitted(policy)
    stalled.completed(clock.now)
    stalled.phase = Phase.WRITING
    clock.now += 1.0
    older = admitted(policy)
    clock.now += 1.0
    admitted(policy)
    assert policy.admit("10.0.0.1").displaced is older
    assert policy.census() == {"ack_unread": 1, "never_completed": 2}


def test_at_its_own_limit_an_address_displaces_only_its_own_connections() -> None:
    clock = ManualClock()
    policy = admission(clock, max_connections=10, per_address=1)
    other = admitted(policy, "10.0.0.2")
    mine = admitted(policy, "10.0.0.1")
    mine.completed(clock.now)
    assert policy.admit("10.0.0.1").refused == "max_connections_per_address"
    assert policy.admit("10.0.0.2").displaced is other


def test_the_accept_brake_refuses_beyond_the_rate_per_address_and_refills() -> None:
    clock = ManualClock()
    policy = Admission(100, 101, accepts_per_s=2.0, protect_s=30.0, clock=clock)
    results = []
    for _ in range(101):
        decision = policy.admit("10.0.0.1")
        results.append(decision.refused)
        if decision.slot is not None:
            decision.slot.completed(clock.now)  # senders: none displaceable
    assert results == [""] * 100 + ["accept_rate"], "a burst of max_connections passes"
    assert policy.admit("10.0.0.2").refused == "max_connections", "another address is not braked"
    clock.now += 0.5
    assert policy.admit("10.0.0.1").refused == "max_connections", "one token back"
    assert policy.admit("10.0.0.1").refused == "accept_rate"
