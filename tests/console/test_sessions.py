"""Sessions end when idle or old; failed logins are counted in a sliding window."""

from __future__ import annotations

from engine.console.sessions import LoginThrottle, Sessions, throttle_keys
from engine.console.users import Role
from engine.testing.clock import ManualClock


def test_a_session_ends_after_idle_time_and_maximum_age() -> None:
    clock = ManualClock()
    sessions = Sessions(idle_s=60, max_s=150, clock=clock)
    session = sessions.open("ana", Role.VIEWER)
    assert session.csrf != session.token
    for _ in range(2):
        clock.now += 59
        assert sessions.get(session.token) is session, "used within the idle time"
    clock.now += 59  # 177 s after login, used 59 s ago
    assert sessions.get(session.token) is None, "past the maximum age"
    other = sessions.open("ana", Role.VIEWER)
    clock.now += 61
    assert sessions.get(other.token) is None, "idle too long"
    assert sessions.get("") is None and sessions.get("unknown") is None


def test_failures_brake_a_name_and_an_address_for_a_window() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(max_failures=3, window_s=300, clock=clock)
    keys = throttle_keys("Ana", "10.0.0.1")
    for _ in range(3):
        assert throttle.retry_after(keys) == 0
        throttle.failed(keys)
        clock.now += 10
    assert throttle.retry_after(keys) == 300 - 30
    assert throttle.retry_after(throttle_keys("ana", "10.0.0.2")) > 0, "the name, any case"
    assert throttle.retry_after(throttle_keys("bob", "10.0.0.1")) > 0, "the address, any name"
    assert throttle.retry_after(throttle_keys("bob", "10.0.0.2")) == 0
    clock.now += 270
    assert throttle.retry_after(keys) == 0, "the oldest failure left the window"


def test_a_success_clears_the_name_not_the_address() -> None:
    throttle = LoginThrottle(max_failures=2, window_s=300, clock=ManualClock())
    keys = throttle_keys("ana", "10.0.0.1")
    throttle.failed(keys)
    throttle.succeeded(keys[:1])
    throttle.failed(keys)
    assert throttle.retry_after(keys[:1]) == 0, "one failure since the success"
    assert throttle.retry_after(keys[1:]) == 300, "two from this address"
