"""`--rate`: one schedule of send slots shared by every connection.

Sans-IO: the caller passes the clock reading and sleeps for the delay it gets back, so the
schedule is tested without waiting. A slot missed because the receiver was slow is not made
up later with a burst.
"""

from __future__ import annotations


class Pacer:
    """Hands out send times `1 / rate` seconds apart."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._next: float | None = None

    def reserve(self, now: float) -> float:
        """Take the next slot; return how long to wait before sending (0 if it is due)."""
        slot = now if self._next is None else max(self._next, now)
        self._next = slot + self._interval
        return slot - now
