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
        self,
        threshold: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] = lambda state: None,
    ) -> None:
        self.threshold = threshold
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change  # told of every change of state (outages must show)
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        self.state = BreakerState.CLOSED

    def _set(self, state: BreakerState) -> None:
        if state is not self.state:
            self.state = state
            self._on_change(state)

    def before_call(self) -> None:
        """Raise `CircuitOpenError` unless a call may go out now (one trial when half open)."""
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_s:
            self._set(BreakerState.HALF_OPEN)
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
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A technical failure: open after `threshold` in a row, or at once after a trial."""
        self._failures += 1
        self._trial_running = False
        if self.state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def record_neutral(self) -> None:
        """A call that says nothing about the service's health (e.g. configuration refused)."""
        self._trial_running = False
