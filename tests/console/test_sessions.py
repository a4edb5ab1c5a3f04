"""Sessions end when idle or old."""

from __future__ import annotations

from engine.console.sessions import Sessions
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
