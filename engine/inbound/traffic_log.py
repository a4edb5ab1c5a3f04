"""What a listener answered, said once a minute rather than once a message.

At `info` the log then grows with time, not with traffic: a line per message cost as much
CPU as storing it. Each message's own line is at `debug`; the store (`queue list
--control-id`), the console's journey page and the metrics keep every message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.base.logs import get_logger
from engine.inbound.interval_counts import IntervalCounts

SUMMARY_INTERVAL_S = 60.0
log = get_logger("engine.inbound.listener")


class TrafficLog(IntervalCounts):
    """Counts a route's answers by outcome; `run` logs and resets them every interval."""

    def __init__(
        self,
        route: str,
        interval_s: float = SUMMARY_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(route, interval_s, clock)

    def count(self, outcome: str, duplicate: bool) -> None:
        self._counts[outcome] += 1
        if duplicate:
            self._counts["duplicate"] += 1

    def flush(self) -> None:
        """Log the counts since the last line (nothing when nothing was answered)."""
        counts, seconds = self._take()
        answered = sum(n for outcome, n in counts.items() if outcome != "duplicate")
        if answered:
            log.info(
                "messages handled",
                route=self._route,
                count=answered,
                seconds=seconds,
                **dict(sorted(counts.items())),
            )
