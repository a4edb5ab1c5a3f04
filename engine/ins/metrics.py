"""INSi's families on `/metrics`: its calls by result and their duration, the breaker, the
simulator, the certificate's expiry. The `ins_enrich` kind adds them to the engine's registry
(`StepKind.metrics`); the INSi service reports its calls to them, and the gauges are set from
its state before each scrape (`engine.ins.panel`). Labels are short fixed words.
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import Gauge, Histogram

from engine.base.metrics import EngineMetrics, histogram_totals

NO_CERTIFICATE = math.nan  # not 0: "expired in 1970" would fire every expiry alert at once
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class InsiMetrics:
    """INSi's families, on the registry of `metrics` (whose counters are saved with the rest)."""

    def __init__(self, metrics: EngineMetrics) -> None:
        registry = metrics.registry
        self.calls = metrics.counter(
            "ins_engine_insi_calls", "Calls made to INSi (each retry counts), by result", ["result"]
        )
        self.breaker_open = Gauge(
            "ins_engine_insi_breaker_open",
            "1 while the INSi circuit breaker refuses calls",
            registry=registry,
        )
        self.simulated = Gauge(
            "ins_engine_insi_simulated",
            "1 when INSi answers come from the simulator, not the national service",
            registry=registry,
        )
        self.call_seconds = Histogram(
            "ins_engine_insi_call_seconds",
            "Duration of one INSi call",
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.certificate_expiry = Gauge(
            "ins_engine_insi_certificate_expiry_timestamp_seconds",
            "When the organisation certificate presented to INSi expires (Unix time); NaN "
            "without one (the simulator), which no expiry alert's comparison matches",
            registry=registry,
        )
        self.certificate_expiry.set(NO_CERTIFICATE)  # until a certificate is read
        self._by_result: dict[str, Any] = {}

    def call(self, result: str, seconds: float) -> None:
        """One HTTP call made to INSi, by the short word of its result."""
        counter = self._by_result.get(result)
        if counter is None:
            counter = self._by_result[result] = self.calls.labels(result)
        counter.inc()
        self.call_seconds.observe(seconds)

    def calls_by_result(self) -> dict[str, int]:
        """How many calls ended with each result, by result."""
        counts = {
            sample.labels["result"]: int(sample.value)
            for family in self.calls.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }
        return dict(sorted(counts.items()))

    def call_totals(self) -> tuple[float, float]:
        """(seconds, calls) of every call so far."""
        return histogram_totals(self.call_seconds)
