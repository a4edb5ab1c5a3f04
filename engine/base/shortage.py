"""Something the engine ran out of, reported once per episode rather than once per refusal.

A refusal that repeats (an accept retried every second without a file descriptor, a flood
of connections beyond a cap) would otherwise write a line each time and bury the log. The
first refusal after `quiet_s` without one starts an episode: that one is logged; the others
are counted by a metric. `active` says whether the episode still goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Shortage:
    def __init__(self, quiet_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._quiet_s = quiet_s
        self._clock = clock
        self._last: float | None = None

    def refused(self) -> bool:
        """Count a refusal; True when it starts an episode (the one to log)."""
        now = self._clock()
        starts = self._last is None or now - self._last >= self._quiet_s
        self._last = now
        return starts

    @property
    def active(self) -> bool:
        """A refusal happened within the last `quiet_s`."""
        return self._last is not None and self._clock() - self._last < self._quiet_s
