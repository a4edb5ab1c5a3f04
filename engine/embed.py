"""Running a route on one message from another Python program: no listener, no store.

    from engine.embed import RouteRunner, SyncRouteRunner

    async with await RouteRunner.open("routes/default.toml", "pas-ehr") as runner:
        processed = await runner.process(raw_bytes)
    processed.destinations["ehr"]          # the bytes the ehr destination would receive

    with SyncRouteRunner("routes/default.toml", "pas-ehr") as runner:   # no event loop
        processed = runner.process(raw_bytes)

A message goes through what the engine would do with it: the listener's admission
(`engine.inbound.admission`: its charsets, the route's `accept`, its steps before the ACK),
its other steps, then each destination's `accept` and steps. The
steps are built as the engine builds them; what they share (the INSi client) is opened
once per runner and closed with it, and INSi results are cached in memory. `process` may
be called concurrently. `ins-engine enrich` and `ins-engine test` run routes this way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from engine.config.settings import Config, load_config
from engine.hl7.ack import AckCode, Outcome, Refusal, ack_code
from engine.inbound.admission import (
    AdmissionRules,
    Ignored,
    Readable,
    Refused,
    Unreadable,
    admit,
)
from engine.routing.plans import build_plan
from engine.routing.route import RoutePlan
from engine.routing.router import routed_message
from engine.steps.kind import Resources
from engine.store.decision import Decision


@dataclass(frozen=True)
class Processed:
    """What a route did with one message.

    `refusal`: the sender would get this AE/AR and nothing else happens. `dropped`: a step
    (or no destination) stopped it, or it is an ACK (never routed). `output`: the message
    after the route's steps (None when refused or dropped). `destinations`: the bytes each
    destination would receive; a destination that would receive nothing is absent. `ack`:
    the code the sender would get (AA, AE, AR; CA, CE, CR in enhanced mode), None for an
    ACK (never answered).
    """

    refusal: Refusal | None
    dropped: bool
    decisions: list[Decision]
    output: bytes | None
    destinations: dict[str, bytes] = field(default_factory=dict)
    ack: AckCode | None = None


class RouteRunner:
    """One route of a configuration, ready to process messages; `aclose()` when done."""

    def __init__(self, plan: RoutePlan, resources: Resources) -> None:
        self.plan = plan
        self._resources = resources
        self._rules = AdmissionRules.of(plan)

    @classmethod
    async def open(
        cls,
        config: Config | str | Path,
        route: str | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> RouteRunner:
        """The route named `route` (default: the first) of a configuration or its file.
        `clock` gives the times steps write (ZFD-6); raises `LookupError` for no such
        route and `ConfigError` for a configuration that does not load."""
        loaded = config if isinstance(config, Config) else load_config(config)
        routes = {settings.name: settings for settings in loaded.routes}
        settings = loaded.routes[0] if route is None else routes.get(route)
        if settings is None:
            raise LookupError(f"no route {route} (routes: {', '.join(routes)})")
        resources = Resources()
        try:
            plan = await build_plan(settings, loaded, None, resources, clock)
        except BaseException:
            await resources.aclose()
            raise
        return cls(plan, resources)

    def admit(self, raw: bytes) -> Readable | Unreadable:
        """What the route's listener would make of these bytes, its steps before the ACK
        run; `route` takes it from there."""
        return admit(raw, self._rules)

    async def process(self, raw: bytes) -> Processed:
        return await self.route(self.admit(raw))

    async def route(self, admission: Readable | Unreadable) -> Processed:
        """Route a message as admitted (`admit`): a refused one gets its refusal only."""
        if isinstance(admission, Unreadable):
            header = admission.header
            enhanced = header is not None and header.enhanced_mode
            return _refused(admission.refusal, [], enhanced)
        routed = admission.routed
        if isinstance(admission, Ignored):
            return Processed(None, True, [], None)
        if isinstance(admission, Refused):
            return _refused(admission.refusal, routed.decisions, routed.header.enhanced_mode)
        accepted = ack_code(Outcome.ACCEPTED, routed.header.enhanced_mode)
        before_ack = list(routed.decisions)
        if routed.dropped:
            return Processed(None, True, before_ack, None, ack=accepted)
        if routed.failed:  # as the engine does: stored as received, its route steps run afresh
            routed = routed_message(routed.message_id, routed.route, routed.raw, self.plan.charsets)
        routing = await self.plan.route(routed)
        delivered = {name: payload or routed.raw for name, payload in routing.deliveries}
        return Processed(
            None,
            routing.dropped,
            [*before_ack, *routing.decisions],
            None if routed.dropped else routed.output(),
            delivered,
            accepted,
        )

    async def aclose(self) -> None:
        """Close what the steps share (the INSi client)."""
        await self._resources.aclose()

    async def __aenter__(self) -> RouteRunner:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _refused(refusal: Refusal, decisions: list[Decision], enhanced: bool) -> Processed:
    return Processed(refusal, False, list(decisions), None, ack=ack_code(refusal.outcome, enhanced))


class SyncRouteRunner:
    """`RouteRunner` for a program without an event loop: it runs one of its own."""

    def __init__(
        self,
        config: Config | str | Path,
        route: str | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._loop = asyncio.Runner()
        try:
            self._runner = self._loop.run(RouteRunner.open(config, route, clock=clock))
        except BaseException:
            self._loop.close()
            raise

    def process(self, raw: bytes) -> Processed:
        return self._loop.run(self._runner.process(raw))

    def close(self) -> None:
        try:
            self._loop.run(self._runner.aclose())
        finally:
            self._loop.close()

    def __enter__(self) -> SyncRouteRunner:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
