"""A bounded wait for a condition nothing signals (a folder, a log, a store read by another
process): the bound is a hang guard, never a speed assertion, so a loaded machine is slower
but not failing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

HANG_GUARD_S = 60.0


async def until(condition: Callable[[], object], timeout_s: float = HANG_GUARD_S) -> None:
    """Return once `condition()` is true; fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - nothing to wait on
            await asyncio.sleep(0.02)
