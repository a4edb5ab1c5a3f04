"""A circuit breaker: after repeated technical failures, stop calling INSi for a while.

A failing service answered by timeouts would otherwise hold every lookup for the whole
timeout and retries; open, the breaker answers at once and lets one trial call through
after `reset_s`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from engine.ins.errors import CircuitOpenError


class BreakerState(enum.Enum):
    """Closed: calls go out. Open: refused at once. Half open: one trial call decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; `threshold` of them open the circuit for `reset_s`."""

    def __init__(
        self, threshold: int, reset_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        self.state = BreakerState.CLOSED

    def current_state(self) -> BreakerState:
        """The state as the next call would find it (open turns half open after reset_s)."""
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return self.state

    def before_call(self) -> None:
        """Raise `CircuitOpenError` unless a call may go out now (one trial when half open)."""
        self.state = self.current_state()
        if self.state is BreakerState.OPEN or (
            self.state is BreakerState.HALF_OPEN and self._trial_running
        ):
            raise CircuitOpenError(
                "INSi calls suspended after repeated failures", code="circuit_open"
            )
        if self.state is BreakerState.HALF_OPEN:
            self._trial_running = True

    def record_success(self) -> None:
        """The service answered: close the circuit."""
        self._failures = 0
        self._trial_running = False
        self.state = BreakerState.CLOSED

    def record_failure(self) -> None:
        """A technical failure: open after `threshold` in a row, or at once after a trial."""
        self._failures += 1
        self._trial_running = False
        if self.state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()

    def record_neutral(self) -> None:
        """A call that says nothing about the service's health (e.g. configuration refused)."""
        self._trial_running = False
