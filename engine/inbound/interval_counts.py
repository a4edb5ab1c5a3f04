"""Counts a listener keeps and says in one line per interval, so that its log grows with time,
not with traffic (`engine.inbound.traffic_log`, `engine.inbound.incident_log`)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable


class IntervalCounts:
    """A route's counts since the last line; `run` calls `flush` every interval."""

    def __init__(
        self, route: str, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._route = route
        self._interval_s = interval_s
        self._clock = clock
        self._since = clock()
        self._counts: Counter[str] = Counter()

    async def run(self) -> None:
        """Say the counts every interval, until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            self.flush()

    def flush(self) -> None:
        """Log the counts since the last line (a subclass says how)."""
        raise NotImplementedError

    def _take(self) -> tuple[Counter[str], float]:
        """The counts since the last line and the seconds they cover; counting starts over."""
        now = self._clock()
        counts, self._counts = self._counts, Counter()
        since, self._since = self._since, now
        return counts, round(now - since, 1)
