"""The organisation certificate's expiry: INSi refuses an expired certificate, and an
IGC-Santé certificate lasts three years, long enough to be forgotten.

From `WARN_BEFORE_DAYS` days before its end, the engine logs a warning at start and then
once a day (an error once it has expired); `/readyz` and the console show the days left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from engine.base.logs import get_logger

WARN_BEFORE_DAYS = 30
DAY_S = 86400.0

log = get_logger("ins.certificate")


def days_left(expires_at: float, now: float) -> float:
    return (expires_at - now) / DAY_S


def expires_soon(expires_at: float, now: float) -> bool:
    """True within the warning period, and once expired."""
    return days_left(expires_at, now) <= WARN_BEFORE_DAYS


def warn_if_expiring(expires_at: float, now: float) -> bool:
    """Log the warning (or the error, once expired) if it is due; True when logged."""
    left = days_left(expires_at, now)
    if left <= 0:
        log.error(
            "INSi certificate EXPIRED: INSi refuses every call; install the renewed certificate",
            days_ago=int(-left),
        )
        return True
    if left <= WARN_BEFORE_DAYS:
        log.warning(
            "INSi certificate expires soon: order and install its renewal", days_left=int(left)
        )
        return True
    return False


async def watch_expiry(
    expires_at: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Check at start and then daily, until cancelled."""
    while True:
        warn_if_expiring(expires_at, clock())
        await sleep(DAY_S)


class ExpiryWatch:
    """`watch_expiry` as a task of the engine, stopped with what the steps share."""

    def __init__(self, expires_at: float) -> None:
        self._task = asyncio.create_task(watch_expiry(expires_at), name="certificate expiry")

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
