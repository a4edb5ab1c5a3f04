"""Building a route's steps from its settings: the one place a step list becomes callables.

The engine, offline enrichment, route tests and the embedding API all call `build_plan`,
so a route's steps are the same whoever runs it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from engine.base.metrics import EngineMetrics
from engine.config.settings import Config, RouteSettings, StepSettings
from engine.coordination.state import StatePublisher
from engine.hl7.patterns import Patterns
from engine.routing.route import DestinationPlan, RoutePlan
from engine.steps.kind import Resources, StepContext
from engine.steps.pipeline import BoundGuard, BoundStep
from engine.steps.registry import registry
from engine.store.decision import ROUTE
from engine.store.roles import ExtensionTables


async def build_plan(
    route: RouteSettings,
    config: Config,
    store: ExtensionTables | None,
    resources: Resources,
    clock: Callable[[], dt.datetime] | None = None,
    state: StatePublisher | None = None,
    metrics: EngineMetrics | None = None,
) -> RoutePlan:
    """The route's and its destinations' steps built by their kinds' factories, the
    route's split at the ACK, and the outbound guards every route runs. `clock` fixes the
    times steps write (route tests); `state` publishes what steps share for `queue
    status`, `metrics` counts for `/metrics` (the engine only)."""
    found = registry()
    kinds = found.kinds

    def context(name: str, destination: str) -> StepContext:
        return StepContext(
            name, route.name, destination, config, store, resources, clock, state, metrics
        )

    async def bound(step: StepSettings, destination: str) -> BoundStep:
        kind = kinds[step.kind]
        built = await kind.build(step.settings, context(step.name, destination))
        return BoundStep(step.name, step.kind, built, kind.inline)

    steps = route.step_list()
    built = [await bound(step, ROUTE) for step in steps]
    before_ack = [step for step, settings in zip(built, steps, strict=True) if settings.before_ack]
    destinations = [
        DestinationPlan(
            destination.name,
            Patterns(destination.accept),
            [await bound(step, destination.name) for step in destination.steps],
        )
        for destination in route.destinations
    ]
    guards = []
    for kind in found.guards:
        settings = route.guard_settings(kind.name) or kind.settings()
        guard = await kind.build(settings, context(kind.name, ROUTE))
        if guard is not None:
            guards.append(BoundGuard(kind.name, guard))
    return RoutePlan(route, built[len(before_ack) :], before_ack, destinations, guards)
