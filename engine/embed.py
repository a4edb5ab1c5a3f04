"""Running a route on one message from another Python program: no listener, no store.

    from engine.embed import RouteRunner, SyncRouteRunner

    async with await RouteRunner.open("routes/default.toml", "pas-ehr") as runner:
        processed = await runner.process(raw_bytes)
    processed.destinations["ehr"]          # the bytes the ehr destination would receive

    with SyncRouteRunner("routes/default.toml", "pas-ehr") as runner:   # no event loop
        processed = runner.process(raw_bytes)

A message goes through what the engine would do after decoding it: the route's `accept`,
its steps before the ACK, its other steps, then each destination's `accept` and steps. The
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
from engine.hl7.ack import Refusal
from engine.hl7.patterns import Patterns
from engine.inbound.intake import header_refusal
from engine.routing.route import RoutePlan
from engine.routing.router import routed_message
from engine.steps.kind import Resources
from engine.steps.pipeline import RoutedMessage
from engine.steps.plans import build_plan
from engine.store.decision import Decision


@dataclass(frozen=True)
class Processed:
    """What a route did with one message.

    `refusal`: the sender would get this AE/AR and nothing else happens. `dropped`: a step
    (or no destination) stopped it. `output`: the message after the route's steps (None when
    refused or dropped). `destinations`: the bytes each destination would receive; a
    destination that would receive nothing is absent.
    """

    refusal: Refusal | None
    dropped: bool
    decisions: list[Decision]
    output: bytes | None
    destinations: dict[str, bytes] = field(default_factory=dict)


class RouteRunner:
    """One route of a configuration, ready to process messages; `aclose()` when done."""

    def __init__(self, plan: RoutePlan, resources: Resources) -> None:
        self.plan = plan
        self._resources = resources
        self._accept = Patterns(plan.settings.accept)

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

    def read(self, raw: bytes) -> RoutedMessage:
        """Decode and parse as the route's listener would; raises `CharsetError` or
        `MessageFormatError` for bytes the engine would refuse."""
        return routed_message(0, self.plan.settings.name, raw, self.plan.charsets)

    async def process(self, raw: bytes) -> Processed:
        return await self.process_message(self.read(raw))

    async def process_message(self, routed: RoutedMessage) -> Processed:
        """Route a message already read (`read`)."""
        refusal = header_refusal(routed.header, self._accept)
        if refusal is None:
            self.plan.screen(routed)
            refusal = routed.refusal
        if refusal is not None or routed.dropped:
            return Processed(refusal, routed.dropped, list(routed.decisions), None)
        before_ack = list(routed.decisions)
        if routed.failed:  # as the engine does: stored as received, its route steps run afresh
            routed = self.read(routed.raw)
        routing = await self.plan.route(routed)
        delivered = {name: payload or routed.raw for name, payload in routing.deliveries}
        return Processed(
            None,
            routing.dropped,
            [*before_ack, *routing.decisions],
            None if routed.dropped else routed.output(),
            delivered,
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
