"""Single-flight: concurrent lookups of the same key share one piece of work.

An ADT burst often carries several messages for one patient; they must cost one INSi search.
The work runs in its own task, so a caller that is cancelled does not cancel the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("ins.insi")


class SingleFlight(Generic[T]):
    """At most one running `work` per key; later callers await the same result."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Task[T]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return (result, shared): shared is True when another caller's work answered."""
        task = self._flights.get(key)
        shared = task is not None
        if task is None:
            task = asyncio.ensure_future(work())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task), shared

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled() and task.exception() is not None:
            # Everyone awaiting got the exception; this covers the case where all gave up.
            log.error("insi lookup failed", error=type(task.exception()).__name__)

    async def aclose(self) -> None:
        """Cancel the work still running (at shutdown)."""
        tasks = list(self._flights.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
