"""A clock a test moves by hand, for the parts that take a `clock` or `monotonic` callable:
no test waits for real time to pass, nor depends on how fast the machine is."""

from __future__ import annotations


class ManualClock:
    """Reads `now` (seconds) until the test moves it: `clock.advance(30)` or `clock.now = …`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
