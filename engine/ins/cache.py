"""Where search outcomes are kept between lookups (and restarts): a small async protocol.

Keys are opaque hashes of normalised traits; the payload is `SearchOutcome.to_payload()`.
The engine's store implements the protocol durably; `MemoryResultCache` is for tests and
for running without a store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class ResultCache(Protocol):
    """Durable key → payload map with an expiry (epoch seconds)."""

    async def load(self, key: str) -> bytes | None:
        """The payload saved under `key`, or None when absent or expired."""
        ...

    async def save(self, key: str, payload: bytes, expires_at: float) -> None:
        """Keep `payload` under `key` until `expires_at` (replacing any previous one)."""
        ...


class MemoryResultCache:
    """A `ResultCache` in a dict, bounded: past `max_entries`, expired then oldest go first."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._entries: dict[str, tuple[bytes, float]] = {}
        self._max_entries = max_entries
        self._clock = clock

    async def load(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[key]
            return None
        return entry[0]

    async def save(self, key: str, payload: bytes, expires_at: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (payload, expires_at)
        if len(self._entries) > self._max_entries:
            now = self._clock()
            for stale in [k for k, (_, expiry) in self._entries.items() if expiry <= now]:
                del self._entries[stale]
            while len(self._entries) > self._max_entries:
                del self._entries[next(iter(self._entries))]
