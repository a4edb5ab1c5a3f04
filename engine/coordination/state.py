"""Publishing what the running engine knows for the operator commands of other processes.

A component (INSi's client, for one) tells the publisher its new state; the publisher
writes it into the store off the caller's path, one write at a time, the latest state
replacing any not yet written. `queue status` reads the rows beside the running engine.
"""

from __future__ import annotations

import asyncio
import contextlib

from engine.base.logs import get_logger
from engine.store.roles import Coordination

log = get_logger("engine.coordination.state")


class StatePublisher:
    def __init__(self, store: Coordination) -> None:
        self._store = store
        self._latest: dict[str, str] = {}
        self._writer: asyncio.Task[None] | None = None

    def publish(self, name: str, payload: str) -> None:
        """Record `name`'s new state (JSON); written soon, never blocking the caller."""
        self._latest[name] = payload
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._latest:
            name, payload = self._latest.popitem()
            try:
                await self._store.put_state(name, payload)
            except Exception as error:  # a status that is not saved must not stop the engine
                log.warning("engine state not saved", reason=name, error=type(error).__name__)

    async def aclose(self) -> None:
        """Write what is pending (before the store closes)."""
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
