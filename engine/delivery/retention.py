"""Pruning what retention no longer needs: finished entries and fully finished messages.

At start and then every hour, outbox entries delivered, skipped or resent before the
cutoff (`retention_days`) are deleted, then messages older than the cutoff that have no
entry left (their decisions and step extension rows go with them by cascade), and rows
step extensions keep for a limited time (INSi results whose cache lifetime is over).
Deletes run in small batches through the store's writer, so intake never waits long behind
them; no VACUUM (the freed pages are reused by new messages).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from engine.base.logs import get_logger
from engine.store.base import Pruned
from engine.store.roles import Pruning

log = get_logger("engine.delivery")

INTERVAL_S = 3600.0
BATCH = 1000
DAY_S = 86400.0


class Retention:
    def __init__(
        self,
        store: Pruning,
        retention_days: float,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention_s = retention_days * DAY_S
        self._interval_s = interval_s
        self._clock = clock

    async def run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception as error:  # try again at the next round
                log.error("retention pruning failed", exc_info=error)
            await asyncio.sleep(self._interval_s)

    async def prune_once(self) -> Pruned:
        """Prune everything past the cutoff, one batch at a time."""
        before = self._clock() - self._retention_s
        entries = messages = expired = 0
        while True:
            pruned = await self._store.prune(before, BATCH)
            entries += pruned.entries
            messages += pruned.messages
            expired += pruned.extension_rows
            if max(pruned.entries, pruned.messages, pruned.extension_rows) < BATCH:
                break
        if entries or messages or expired:
            log.info(
                "retention pruned finished messages",
                entries=entries,
                messages=messages,
                count=expired,
            )
        return Pruned(entries, messages, expired)
