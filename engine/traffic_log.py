"""What a listener answered, said once a minute rather than once a message.

At `info` the log then grows with time, not with traffic: a line per message cost as much
CPU as storing it. Each message's own line is at `debug`; the store (`queue list
--control-id`), the console's journey page and the metrics keep every message.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

from engine.logs import get_logger

SUMMARY_INTERVAL_S = 60.0
log = get_logger("engine.listener")


class TrafficLog:
    """Counts a route's answers by outcome; `run` logs and resets them every interval."""

    def __init__(
        self,
        route: str,
        interval_s: float = SUMMARY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._route = route
        self._interval_s = interval_s
        self._clock = clock
        self._since = clock()
        self._counts: Counter[str] = Counter()

    def count(self, outcome: str, duplicate: bool) -> None:
        self._counts[outcome] += 1
        if duplicate:
            self._counts["duplicate"] += 1

    async def run(self) -> None:
        """Say the counts every interval, until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            self.flush()

    def flush(self) -> None:
        """Log the counts since the last line (nothing when nothing was answered)."""
        now = self._clock()
        counts, self._counts = self._counts, Counter()
        since, self._since = self._since, now
        answered = sum(n for outcome, n in counts.items() if outcome != "duplicate")
        if answered:
            log.info(
                "messages handled",
                route=self._route,
                count=answered,
                seconds=round(now - since, 1),
                **dict(sorted(counts.items())),
            )
