"""What the HTTP listener may read of the running engine.

Handlers get this view rather than the engine: the store (through its interface), the
metrics, what the steps share shows of itself (`engine.steps.panel`: INSi's state, when a
route enriches) and the listeners' state, nothing that starts or stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from engine.base.metrics import EngineMetrics
from engine.config.settings import Config, HttpSettings
from engine.inbound.listener import Listener
from engine.routing.route import RoutePlan
from engine.steps.kind import Resources
from engine.steps.panel import Panel
from engine.store.roles import Store


@dataclass(frozen=True)
class ReloadRecord:
    """The last reload of the configuration (`engine.app.reload`): for the console."""

    outcome: str  # "applied", "refused", "incomplete" (a listener not bound) or "failed"
    reason: str = ""  # why refused: every error, one per line (files and keys, no message)
    changes: dict[str, list[str]] = field(default_factory=dict)  # added/changed/removed routes
    at: float = field(default_factory=time.time)


@dataclass
class EngineView:
    config: Config
    store: Store
    metrics: EngineMetrics
    resources: Resources  # what the steps share, and what of it the shell shows
    listeners: Mapping[str, Listener]
    plans: Mapping[str, RoutePlan]
    requeued: Callable[[], None] = lambda: None  # entries were queued again: wake delivery
    delivering: Callable[[], bool] = lambda: True  # the delivery process runs (when there is one)
    descriptors_exhausted: Callable[[], bool] = lambda: False  # an accept failed for want of one
    started_at: float = field(default_factory=time.time)
    last_reload: ReloadRecord | None = None  # none since start

    @property
    def http(self) -> HttpSettings:
        assert self.config.http is not None
        return self.config.http

    def panels(self) -> dict[str, Panel]:
        """What the shared resources show, by name (`/readyz`, `/metrics`, the console)."""
        return self.resources.panels()

    def destinations(self) -> list[tuple[str, str]]:
        """(route, destination) of every configured destination, in configuration order."""
        return [
            (route.name, destination.name)
            for route in self.config.routes
            for destination in route.destinations
        ]


ENGINE = web.AppKey("engine", EngineView)


def engine_of(request: web.Request) -> EngineView:
    return request.app[ENGINE]


def engine_of_app(app: web.Application) -> EngineView:
    return app[ENGINE]
