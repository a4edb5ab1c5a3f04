"""INSi as the engine's shell shows it (`engine.steps.panel`): its block of `/readyz`, its
gauges on `/metrics`, the console's SIMULATED banner and its dashboard card.

INSi does not decide readiness: without INSi, messages still flow, without an INS.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from engine.ins.expiry import days_left, expires_soon
from engine.ins.service import InsiService
from engine.steps.panel import Card, Pill, Row

SIMULATED_BANNER = (
    "INSi is SIMULATED: answers come from the engine's local simulator, "
    "never from the national teleservice."
)


class InsiPanel:
    """What the shell shows of one INSi service."""

    def __init__(self, insi: InsiService, clock: Callable[[], float] = time.time) -> None:
        self._insi = insi
        self._clock = clock

    def health(self) -> dict[str, Any]:
        """Simulated, the breaker, the last error and the certificate's expiry."""
        health = self._insi.health.health
        report: dict[str, Any] = {
            "simulated": health.simulated,
            "breaker": health.breaker,
            "last_error": health.last_error,
            "last_error_at": _iso(health.last_error_at),
        }
        expires_at = self._insi.certificate_expires_at
        if expires_at is not None:
            now = self._clock()
            report["certificate"] = {
                "expires_at": _iso(expires_at),
                "days_left": int(days_left(expires_at, now)),
                "warning": expires_soon(expires_at, now),
            }
        return report

    def refresh_metrics(self) -> None:
        metrics, health = self._insi.metrics, self._insi.health.health
        metrics.breaker_open.set(health.breaker == "open")
        metrics.simulated.set(health.simulated)
        if self._insi.certificate_expires_at is not None:
            metrics.certificate_expiry.set(self._insi.certificate_expires_at)

    def banner(self) -> str | None:
        return SIMULATED_BANNER if self._insi.simulated else None

    def call_totals(self) -> tuple[float, float]:
        return self._insi.metrics.call_totals()

    def card(self, latency_ms: float | None) -> Card:
        health = self._insi.health.health
        mode = Pill("SIMULATED", "warn") if health.simulated else Pill("national service", "ok")
        breaker = Pill(health.breaker, f"{'ok' if health.breaker == 'closed' else 'bad'} breaker")
        calls = self._insi.metrics.calls_by_result()
        rows = [
            Row("Mode", (mode,)),
            Row("Circuit breaker", (breaker,)),
            Row(
                "Latency (last min)",
                text=f"{latency_ms:.1f} ms" if latency_ms is not None else None,
            ),
            Row(
                "Calls",
                tuple(Pill(f"{result} {count}", result=result) for result, count in calls.items()),
                empty="none yet",
                css="calls",
            ),
            Row("Last error", text=health.last_error, at=health.last_error_at),
        ]
        expires_at = self._insi.certificate_expires_at
        if expires_at is not None:
            now = self._clock()
            warning = "bad" if expires_soon(expires_at, now) else "ok"
            days = int(days_left(expires_at, now))
            rows.append(Row("Certificate", (Pill(f"expires in {days} days", warning),)))
        return Card("INSi", "insi", tuple(rows))


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")
