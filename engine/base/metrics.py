"""The engine's Prometheus metrics: one registry per engine and the points that feed it.

The listener, the delivery workers and the router report what they did through the methods
below; `/metrics` renders the registry. A step kind counts its own decisions with the
counters it declares (`DecisionCounter`), made with the engine's, and may add families of its
own (`component`), which the resources it shares report to. Labels name routes, destinations,
ACK codes and outcomes, all from the configuration or from short fixed codes: never a control
id, never anything read from a message's content.

Counters can be saved to the store and restored at start (`counter_values`, `restore`),
so a restart does not reset them; histograms and gauges start afresh.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from engine.base.logs import get_logger

# `_created` series double every counter and say nothing a restart time does not.
prometheus_client.disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format every Prometheus reads
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DELIVERY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0)

CounterValue = tuple[str, dict[str, str], float]
"""A saved counter: its name (without `_total`), its labels, its value."""
SAVE_EVERY_S = 10.0
C = TypeVar("C")
log = get_logger("engine.base.metrics")


class CounterStore(Protocol):
    """Where counters are saved between runs (the engine's store)."""

    async def save_counters(self, values: list[tuple[str, str, float]]) -> None: ...

    async def load_counters(self) -> list[tuple[str, str, float]]: ...


class Decision(Protocol):
    """What the counters read of a step's decision (`engine.store.decision.Decision`)."""

    @property
    def step(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    @property
    def detail(self) -> str: ...

    @property
    def destination(self) -> str: ...


@dataclass(frozen=True)
class DecisionCounter:
    """A counter of a step kind's decisions: `label_values(route, decision)` gives the values
    of `labels` for a decision of a step of kind `kind` it counts, None for one it does not."""

    name: str
    help: str
    labels: tuple[str, ...]
    kind: str
    label_values: Callable[[str, Decision], Sequence[str] | None]


class EngineMetrics:
    """Everything `/metrics` shows for one engine, in a registry of its own; `counters`:
    those the step kinds add (`engine.steps.registry.Registry.decision_counters`);
    `components`: the families of their own they add, by kind (`Registry.metric_components`),
    registered at once so that `/metrics` lists them before their first use."""

    def __init__(
        self,
        counters: Iterable[DecisionCounter] = (),
        components: Mapping[str, Callable[[EngineMetrics], Any]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._counters: dict[str, tuple[Counter, tuple[str, ...]]] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        prometheus_client.ProcessCollector(registry=registry)
        self.received = self.counter(
            "ins_engine_messages_received",
            "Messages answered by a route's listener, by the ACK code decided",
            ["route", "ack_code"],
        )
        self.delivered = self.counter(
            "ins_engine_messages_delivered",
            "Messages delivered to a destination",
            ["route", "destination"],
        )
        self.delivery_failures = self.counter(
            "ins_engine_delivery_failures",
            "Failed delivery attempts (retried or parked)",
            ["route", "destination"],
        )
        self.parked = self.counter(
            "ins_engine_messages_parked",
            "Messages parked after failed deliveries or a rejection",
            ["route", "destination"],
        )
        self.mismatched_acks = self.counter(
            "ins_engine_mismatched_acks",
            "ACKs of another message than the one sent (MSA-2 is not its MSH-10)",
            ["route", "destination"],
        )
        self.decisions = self.counter(
            "ins_engine_step_decisions",
            "Route steps' decisions (outcome codes), counted when the routing is committed",
            ["route", "step", "outcome"],
        )
        self._by_kind: dict[str, list[tuple[Counter, DecisionCounter]]] = {}
        for declared in counters:
            counter = self.counter(declared.name, declared.help, list(declared.labels))
            self._by_kind.setdefault(declared.kind, []).append((counter, declared))
        self.api_requests = self.counter(
            "ins_engine_api_requests",
            "Calls of POST /api/v1/enrich, by result (the enrichment outcome, or why not)",
            ["result"],
        )
        self.descriptors_exhaustions = self.counter(
            "ins_engine_descriptors_exhausted",
            "Probes (one a second) that found no file descriptor free, by error (EMFILE for "
            "the process, ENFILE for the system)",
            ["error"],
        )
        self.http_closed = self.counter(
            "ins_engine_http_connections_closed",
            "HTTP connections the engine closed: beyond max_connections, or a timeout",
            ["reason"],
        )
        self.mllp_refused = self.counter(
            "ins_engine_mllp_connections_refused",
            "MLLP connections closed at once, by reason (allow_list, accept_rate, "
            "max_connections_per_address, max_connections, tls_handshake, stopping)",
            ["route", "reason"],
        )
        self.mllp_closed = self.counter(
            "ins_engine_mllp_connections_closed",
            "MLLP connections the engine closed: displaced (by class) or timed out",
            ["route", "reason"],
        )
        self.mllp_junk = self.counter(
            "ins_engine_mllp_junk_bytes",
            "Bytes received outside MLLP blocks and discarded",
            ["route"],
        )
        self.config_reloads = self.counter(
            "ins_engine_config_reloads",
            "Reloads of the configuration asked of the running engine, by outcome (applied; "
            "refused: the running configuration kept; incomplete: applied but a listener not "
            "bound; failed: an internal error)",
            ["outcome"],
        )
        self.config_loaded_at = Gauge(
            "ins_engine_config_last_reload_success_timestamp_seconds",
            "When the configuration running now was loaded (at start, or by a reload)",
            registry=registry,
        )
        self.config_reload_ok = Gauge(
            "ins_engine_config_last_reload_successful",
            "1 when the last reload was applied (or none was asked since start), 0 when it "
            "was refused",
            registry=registry,
        )
        self.config_reload_ok.set(1)
        self.http_connections = Gauge(
            "ins_engine_http_connections",
            "HTTP connections open now (TLS handshakes included)",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "ins_engine_queue_depth",
            "Outbox entries waiting, per destination and status (pending, parked)",
            ["route", "destination", "status"],
            registry=registry,
        )
        self.oldest_pending = Gauge(
            "ins_engine_queue_oldest_pending_age_seconds",
            "Age of the oldest pending entry of a destination (0 when none)",
            ["route", "destination"],
            registry=registry,
        )
        self.ack_seconds = Histogram(
            "ins_engine_ack_seconds",
            "From a block fully received to its ACK written",
            buckets=ACK_BUCKETS,
            registry=registry,
        )
        self.delivery_seconds = Histogram(
            "ins_engine_delivery_seconds",
            "Duration of one delivery attempt, successful or not",
            buckets=DELIVERY_BUCKETS,
            registry=registry,
        )
        self._components: dict[str, Any] = {}
        for name, make in (components or {}).items():
            self.component(name, make)

    def component(self, name: str, make: Callable[[EngineMetrics], C]) -> C:
        """The families a step kind added under `name`, made with `make` on first use: a
        kind's shared resource gets them back here (for an engine made without them, such
        as a test's, they are registered now)."""
        if name not in self._components:
            self._components[name] = make(self)
        made: C = self._components[name]
        return made

    def watch_wal(self, size: Callable[[], int]) -> None:
        """Show the SQLite store's WAL size, read at each scrape (no such gauge on
        PostgreSQL)."""
        Gauge(
            "ins_engine_store_wal_bytes",
            "Size of the SQLite store's write-ahead log file",
            registry=self.registry,
        ).set_function(size)

    def _child(self, metric: Counter, *labels: str) -> Any:
        """`metric.labels(*labels)`, kept: the per-message counters would otherwise look
        their labels up and check them for every message."""
        key = (id(metric), labels)  # the metric lives as long as this object
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def counter(self, name: str, documentation: str, labels: list[str]) -> Counter:
        """A counter on this registry, saved to the store and restored with the others."""
        counter = Counter(name, documentation, labels, registry=self.registry)
        self._counters[name] = (counter, tuple(labels))
        return counter

    # -- what the engine reports ----------------------------------------------------------

    def message_answered(self, route: str, ack_code: str, seconds: float) -> None:
        self._child(self.received, route, ack_code or "none").inc()
        self.ack_seconds.observe(seconds)

    def mllp_connection_refused(self, route: str, reason: str) -> None:
        self._child(self.mllp_refused, route, reason).inc()

    def mllp_connection_closed(self, route: str, reason: str) -> None:
        self._child(self.mllp_closed, route, reason).inc()

    def mllp_junk_bytes(self, route: str, size: int) -> None:
        self._child(self.mllp_junk, route).inc(size)

    def delivery_attempted(
        self,
        route: str,
        destination: str,
        seconds: float,
        delivered: bool,
        parked: bool = False,
        mismatched: bool = False,
    ) -> None:
        self.delivery_seconds.observe(seconds)
        if delivered:
            self._child(self.delivered, route, destination).inc()
            return
        self._child(self.delivery_failures, route, destination).inc()
        if parked:
            self._child(self.parked, route, destination).inc()
        if mismatched:
            self._child(self.mismatched_acks, route, destination).inc()

    def decided(self, route: str, decisions: Iterable[Decision]) -> None:
        """One message's decisions, once its routing is committed."""
        for decision in decisions:
            self._child(self.decisions, route, decision.step, decision.outcome).inc()
            for counter, declared in self._by_kind.get(decision.kind, ()):
                values = declared.label_values(route, decision)
                if values is not None:
                    self._child(counter, *values).inc()

    def config_loaded(self, at: float) -> None:
        """The configuration given at start is running."""
        self.config_loaded_at.set(at)

    def config_reloaded(self, outcome: str, at: float) -> None:
        """A reload `applied`, `refused` (nothing changed), `incomplete` (applied, but a
        listener could not be bound) or `failed` (an internal error)."""
        self._child(self.config_reloads, outcome).inc()
        applied = outcome == "applied"
        self.config_reload_ok.set(1 if applied else 0)
        if applied or outcome == "incomplete":
            self.config_loaded_at.set(at)

    def api_request(self, result: str) -> None:
        self._child(self.api_requests, result).inc()

    def descriptors_exhausted(self, error: str) -> None:
        self._child(self.descriptors_exhaustions, error).inc()

    def http_connection_closed(self, reason: str) -> None:
        self._child(self.http_closed, reason).inc()

    def queue_depths(
        self,
        rows: Iterable[tuple[str, str, int, int, float]],
        destinations: Sequence[tuple[str, str]],
    ) -> None:
        """Set the queue gauges from (route, destination, pending, parked, oldest age s);
        every configured destination gets a value, 0 when its queue is empty."""
        found = {(route, destination): rest for route, destination, *rest in rows}
        for route, destination in {*destinations, *found}:
            pending, parked, oldest = found.get((route, destination), (0, 0, 0.0))
            self.queue_depth.labels(route, destination, "pending").set(pending)
            self.queue_depth.labels(route, destination, "parked").set(parked)
            self.oldest_pending.labels(route, destination).set(oldest)

    # -- rendering, saving, restoring -----------------------------------------------------

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def counter_values(self) -> list[CounterValue]:
        """Every counter's labelled value, to save in the store."""
        values = []
        for counter, _ in self._counters.values():
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        values.append((family.name, dict(sample.labels), sample.value))
        return values

    def totals(self, name: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of every series of one counter (its name without `_total`)."""
        return [(labels, value) for found, labels, value in self.counter_values() if found == name]

    def restore(self, values: Iterable[CounterValue]) -> None:
        """Start counters from saved values (unknown names or labels are ignored)."""
        for name, labels, value in values:
            counter, names = self._counters.get(name, (None, ()))
            if counter is not None and set(labels) == set(names) and value > 0:
                counter.labels(**labels).inc(value)


def histogram_totals(histogram: Histogram) -> tuple[float, float]:
    """(sum, count) of a histogram without labels."""
    total = count = 0.0
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    return total, count


async def restore_counters(metrics: EngineMetrics, store: CounterStore) -> None:
    """Start the counters from their last saved values."""
    metrics.restore(
        (name, json.loads(labels), value) for name, labels, value in await store.load_counters()
    )


async def save_counters(metrics: EngineMetrics, store: CounterStore) -> None:
    """Save every counter; a failure is logged (the counts since the last save may be lost)."""
    values = [
        (name, json.dumps(labels, sort_keys=True), value)
        for name, labels, value in metrics.counter_values()
    ]
    try:
        await store.save_counters(values)
    except Exception as error:  # counters are worth less than stopping cleanly
        log.warning("metric counters not saved", exc_info=error)


async def keep_counters(metrics: EngineMetrics, store: CounterStore) -> None:
    """Save the counters every `SAVE_EVERY_S` until cancelled (and once more at stop)."""
    while True:
        await asyncio.sleep(SAVE_EVERY_S)
        await save_counters(metrics, store)
