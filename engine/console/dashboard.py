"""The dashboard: per route, per destination and for what the steps share (INSi, through its
`Panel`), what an interface engineer checks first. Counts come from the metrics (so they match
`/metrics`), queues from the store, rates and call latencies from a sampler that reads the
counters every few seconds. No patient data is shown here.

The live part (`/dashboard/live`) is re-fetched by htmx every few seconds without a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from engine.base.metrics import EngineMetrics
from engine.console.render import render
from engine.http.view import EngineView, engine_of
from engine.steps.panel import Card, Panel

SAMPLE_EVERY_S = 5.0
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Sample:
    at: float
    received: dict[str, float]  # per route
    calls: dict[str, tuple[float, float]]  # per panel: (seconds, count) of its calls so far


class RateSampler:
    """Reads the counters every `SAMPLE_EVERY_S` and keeps a minute of samples, so the
    dashboard shows messages per minute and each panel's call latency over the last minute."""

    def __init__(
        self,
        metrics: EngineMetrics,
        panels: Callable[[], Mapping[str, Panel]] = dict,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._panels = panels
        self._clock = clock
        self._samples: deque[Sample] = deque()

    def sample(self) -> None:
        received: dict[str, float] = {}
        for labels, value in self._metrics.totals("ins_engine_messages_received"):
            received[labels["route"]] = received.get(labels["route"], 0.0) + value
        calls = {name: panel.call_totals() for name, panel in self._panels().items()}
        now = self._clock()
        self._samples.append(Sample(now, received, calls))
        while len(self._samples) > 2 and self._samples[1].at <= now - RATE_WINDOW_S:
            self._samples.popleft()

    def per_minute(self, route: str) -> float | None:
        """Messages answered per minute over the last minute; None before two samples."""
        first, last = self._span()
        if first is None or last is None:
            return None
        counted = last.received.get(route, 0.0) - first.received.get(route, 0.0)
        return counted * 60.0 / (last.at - first.at)

    def latency_ms(self, panel: str) -> float | None:
        """Mean duration of a panel's calls over the last minute; None without calls."""
        first, last = self._span()
        if first is None or last is None:
            return None
        (seconds, calls), (seconds_before, calls_before) = (
            sample.calls.get(panel, (0.0, 0.0)) for sample in (last, first)
        )
        if calls == calls_before:
            return None
        return (seconds - seconds_before) / (calls - calls_before) * 1000

    def _span(self) -> tuple[Sample | None, Sample | None]:
        if len(self._samples) < 2 or self._samples[-1].at <= self._samples[0].at:
            return None, None
        return self._samples[0], self._samples[-1]

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY_S)


SAMPLER = web.AppKey("rate_sampler", RateSampler)


@dataclass
class RouteCard:
    name: str
    listen: str
    bound: bool
    connections: int
    per_minute: float | None
    unrouted: int  # acknowledged, steps not finished (e.g. waiting for INSi)
    acks: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    census: dict[str, int] = field(default_factory=dict)  # connections by what they do
    refused: dict[str, int] = field(default_factory=dict)  # connections refused, by reason
    closed: dict[str, int] = field(default_factory=dict)  # displaced or timed out, by reason


@dataclass
class DestinationCard:
    route: str
    name: str
    pending: int
    parked: int
    oldest_age_s: float | None
    head_attempts: int
    last_error: str | None


def _by(metrics: EngineMetrics, name: str, label: str, route: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for labels, value in metrics.totals(name):
        if route is None or labels.get("route") == route:
            counts[labels[label]] = counts.get(labels[label], 0) + int(value)
    return dict(sorted(counts.items()))


async def route_cards(engine: EngineView, sampler: RateSampler) -> list[RouteCard]:
    unrouted = await engine.store.unrouted()
    cards = []
    for route in engine.config.routes:
        listener = engine.listeners.get(route.name)
        bound = listener is not None and listener.bound
        cards.append(
            RouteCard(
                route.name,
                "{}:{}".format(*listener.address)
                if listener is not None and bound
                else route.listen,
                bound,
                listener.connections if listener is not None else 0,
                sampler.per_minute(route.name),
                unrouted.get(route.name, 0),
                _by(engine.metrics, "ins_engine_messages_received", "ack_code", route.name),
                _by(engine.metrics, "ins_engine_enrichment_outcomes", "outcome", route.name),
                listener.census() if listener is not None else {},
                _by(engine.metrics, "ins_engine_mllp_connections_refused", "reason", route.name),
                _by(engine.metrics, "ins_engine_mllp_connections_closed", "reason", route.name),
            )
        )
    return cards


async def destination_cards(engine: EngineView) -> list[DestinationCard]:
    now = time.time()
    queues = {
        (queue.route, queue.destination): queue for queue in await engine.store.queue_status()
    }
    cards = []
    for route, destination in engine.destinations():
        queue = queues.get((route, destination))
        if queue is None:
            cards.append(DestinationCard(route, destination, 0, 0, None, 0, None))
            continue
        oldest = now - queue.oldest_pending_at if queue.oldest_pending_at else None
        cards.append(
            DestinationCard(
                route,
                destination,
                queue.pending,
                queue.parked,
                oldest,
                queue.head_attempts,
                queue.last_error,
            )
        )
    return cards


def panel_cards(engine: EngineView, sampler: RateSampler) -> list[Card]:
    """The cards of what the steps share, with their call latency over the last minute."""
    return [panel.card(sampler.latency_ms(name)) for name, panel in engine.panels().items()]


async def _context(request: web.Request) -> dict[str, Any]:
    engine = engine_of(request)
    sampler = request.app[SAMPLER]
    return {
        "routes": await route_cards(engine, sampler),
        "destinations": await destination_cards(engine),
        "cards": panel_cards(engine, sampler),
        "last_reload": engine.last_reload,
        "refreshed_at": time.time(),
    }


async def dashboard(request: web.Request) -> web.Response:
    return render(request, "dashboard.html", **await _context(request))


async def live(request: web.Request) -> web.Response:
    return render(request, "dashboard_live.html", **await _context(request))


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SAMPLER].run(), name="dashboard sampler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def register(app: web.Application, engine: EngineView) -> None:
    app[SAMPLER] = RateSampler(engine.metrics, engine.panels)
    app.cleanup_ctx.append(_sampling)
    app.router.add_get("/", dashboard)
    app.router.add_get("/dashboard/live", live)
