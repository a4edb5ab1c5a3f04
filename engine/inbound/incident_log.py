"""A listener's incidents in a bounded number of lines, whatever its input.

Refused connections, displacements, bytes outside blocks and refused messages each wrote a
line: garbage at full speed wrote 6,155 lines a second. Each kind now writes its own lines
(peer, reason, control id) for the first `detail_lines` of an interval only, and one
`listener incidents` line per interval gives every count, the source address seen most and
how many lines were left out. The metrics count every incident.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from engine.base.logs import get_logger
from engine.inbound.interval_counts import IntervalCounts

INTERVAL_S = 10.0
DETAIL_LINES = 5  # per kind of line and interval
MAX_ADDRESSES = 1024  # addresses counted per interval; beyond, only the totals
log = get_logger("engine.inbound.listener")


class IncidentLog(IntervalCounts):
    """Counts a listener's incidents; `run` logs and resets them every interval."""

    def __init__(
        self,
        route: str,
        interval_s: float = INTERVAL_S,
        detail_lines: int = DETAIL_LINES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(route, interval_s, clock)
        self._detail_lines = detail_lines
        self._addresses: Counter[str] = Counter()
        self._lines: Counter[str] = Counter()

    def count(self, what: str, address: str, amount: int = 1) -> None:
        self._counts[what] += amount
        if address in self._addresses or len(self._addresses) < MAX_ADDRESSES:
            self._addresses[address] += 1

    def detail(self, kind: str) -> bool:
        """Whether a line of this kind may be written now (else it is counted as left out)."""
        if self._lines[kind] < self._detail_lines:
            self._lines[kind] += 1
            return True
        self._counts["lines_left_out"] += 1
        return False

    def flush(self) -> None:
        """Log the counts since the last line (nothing when nothing happened)."""
        counts, seconds = self._take()
        addresses, self._addresses = self._addresses, Counter()
        self._lines.clear()
        if counts:
            (address, _), *_ = addresses.most_common(1) or [("", 0)]
            log.warning(
                "listener incidents",
                route=self._route,
                seconds=seconds,
                address=address or None,
                addresses=len(addresses),
                **dict(sorted(counts.items())),
            )
