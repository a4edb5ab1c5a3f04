"""The brake on password guessing: wrong passwords counted per user name and client.

Counting per address alone locked out everyone behind a shared workstation or a proxy after
one person's mistakes; counting per name alone let anyone lock a colleague out from afar.
Per name *and* client, one user's mistakes never lock another. The failures are kept in the
store, with wall-clock times, so that every engine on it counts them alike and `ins-engine
user unlock NAME` lifts a lockout of a running engine at once. Past `max_failures` within
`window_s`, that name from that client is refused without a password check until the oldest
of those failures leaves the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.store.roles import LoginBrake as BrakeStore


def user_key(name: str) -> str:
    """Names count in any case (`Ana` and `ana` share their failures)."""
    return name.lower()


class LoginBrake:
    def __init__(
        self,
        store: BrakeStore,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._max = max_failures
        self._window_s = window_s
        self._clock = clock

    async def retry_after(self, name: str, client: str) -> float:
        """Seconds before this name from this client is checked again; 0 when it may be now."""
        now = self._clock()
        failures = await self._store.login_failures(user_key(name), client, now - self._window_s)
        return self._wait(failures, now)

    async def failed(self, name: str, client: str) -> bool:
        """Count a wrong password; True when it is the one that locks this name and client."""
        now = self._clock()
        failures = await self._store.login_failed(user_key(name), client, now, self._window_s)
        return len(failures) == self._max

    async def succeeded(self, name: str, client: str) -> None:
        await self._store.clear_login_failures(user_key(name), client)

    def _wait(self, failures: list[float], now: float) -> float:
        if len(failures) < self._max:
            return 0.0
        return max(0.0, failures[-self._max] + self._window_s - now)
