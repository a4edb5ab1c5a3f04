"""What a step kind is: a name, a settings dataclass and a factory; and what a factory gets.

A kind's settings dataclass is read like every section of the configuration: field names
are the TOML keys of the step's table (beside the common `kind`, `name` and `before_ack`),
field metadata `doc` is the key's line in `check --keys` and the reference, `problems()`
returns (key, what is expected) for cross-field rules, and an optional
`placement_problems(before_ack)` says which settings need the step before (or after) the
ACK. The factory builds one step for one place in one route; it may open shared resources
(an INSi client) through `context.resources`, once per engine.

A kind brings what else it needs through the same declaration, so that the engine's core
names none of it: its engine-wide sections and route keys (read by the configuration
loader), its checks of the machine before start (`preflight`), its metric counters and
families.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from engine.base.metrics import DecisionCounter, EngineMetrics
from engine.config.loader import Key
from engine.config.settings import Config
from engine.coordination.state import StatePublisher
from engine.steps.panel import Panel
from engine.steps.pipeline import Guard, Step
from engine.store.extension import StoreExtension
from engine.store.roles import ExtensionTables

T = TypeVar("T", bound="Closable")


class Closable(Protocol):
    async def aclose(self) -> None: ...


class Resources:
    """What several steps share (an INSi client): opened on first use, closed with the engine;
    and what of them the engine's shell shows (`engine.steps.panel`)."""

    def __init__(self) -> None:
        self._opened: dict[str, Any] = {}
        self._panels: dict[str, Panel] = {}

    async def get(self, key: str, open_resource: Callable[[], Awaitable[T]]) -> T:
        if key not in self._opened:
            self._opened[key] = await open_resource()
        resource: T = self._opened[key]
        return resource

    def opened(self, key: str) -> Any | None:
        """A resource already opened under `key`, or None (nothing is opened here)."""
        return self._opened.get(key)

    def show(self, name: str, panel: Panel) -> None:
        """Let `/readyz`, `/metrics` and the console show `panel` under `name`."""
        self._panels[name] = panel

    def panels(self) -> dict[str, Panel]:
        """The panels shown, in the order they were offered."""
        return dict(self._panels)

    async def aclose(self) -> None:
        """Close in the reverse order of opening (nothing is shown any more)."""
        self._panels.clear()
        while self._opened:
            _, resource = self._opened.popitem()
            await resource.aclose()


@dataclass(frozen=True)
class StepContext:
    """What a factory may use besides its settings."""

    name: str  # the step's name in its list
    route: str
    destination: str  # "" for a route step
    config: Config  # the whole configuration: engine-wide sections such as [insi]
    store: ExtensionTables | None  # None without one (offline enrichment, route tests, embedding)
    resources: Resources
    clock: Callable[[], dt.datetime] | None  # for times a step writes; None: the real one
    state: StatePublisher | None = None  # for what `queue status` shows; None offline
    metrics: EngineMetrics | None = None  # what `/metrics` counts; None offline


StepFactory = Callable[[Any, StepContext], Awaitable[Step]]
Preflight = Callable[[Config], Iterable[tuple[str, str]]]
"""A kind's checks of the machine before start: (key, what is wrong and what to do)."""


def from_settings(step: Callable[[Any], Step]) -> StepFactory:
    """The factory of a kind whose step needs nothing but its settings."""

    async def build(settings: Any, context: StepContext) -> Step:
        return step(settings)

    return build


@dataclass(frozen=True)
class StepKind:
    """A registered step kind.

    `before_ack`: the kind may be placed before the ACK, so it must decide synchronously and
    never change the message (the engine stores the bytes received). `store_extension`: the
    kind's own tables in the store, if any. `sections`: engine-wide tables it reads
    (`config.NAME`); `route_keys`: keys it adds to every route (`route.NAME`);
    `implicit_step`: the settings of its step on a route that lists no `steps`, from those
    keys (None: no step there). `preflight`: what it needs from the machine, checked by
    `check` and before `run` when a route uses it. `counters`: its `/metrics` counters.
    `metrics`: makes its own families on the engine's metrics, once per engine, whether a
    route uses it or not; what it shares gets them back with
    `context.metrics.component(name, metrics)`. `outcomes`: the outcome codes its decisions
    carry (the console's message list offers them as a filter), `attention`: those among
    them that ask a person to act (the console flags them on a message's page), `meanings`:
    what its outcome and detail codes mean (shown beside each decision). `handles`: the MSH-9
    `TYPE^EVENT` values a step with these settings acts on (None: any message), so that
    `check` warns of an `accept` list that takes none of them. `inline`: its steps may start
    in the router's own task and, when they finish without waiting, need no task of their
    own; only for a kind whose steps enter no `asyncio.timeout` and ask for no current task
    before their first wait (such a timeout would belong to the router's task).
    """

    name: str
    settings: type
    build: StepFactory
    doc: str
    before_ack: bool = False
    inline: bool = False
    store_extension: StoreExtension | None = None
    sections: tuple[Key, ...] = ()
    route_keys: tuple[Key, ...] = ()
    implicit_step: Callable[[Mapping[str, Any]], Any | None] | None = None
    preflight: Preflight | None = None
    counters: tuple[DecisionCounter, ...] = ()
    metrics: Callable[[EngineMetrics], Any] | None = None
    outcomes: tuple[str, ...] = ()
    attention: frozenset[str] = frozenset()
    meanings: Mapping[str, str] = field(default_factory=dict)
    handles: Callable[[Any], Sequence[str]] | None = None


GuardFactory = Callable[[Any, StepContext], Awaitable[Guard | None]]


@dataclass(frozen=True)
class GuardKind:
    """An outbound guard: the engine runs it on every message that leaves every route, after
    every step (`engine.steps.pipeline.guard`). A route does not list it and cannot leave it out;
    its settings are the route's table named after the kind. `build` returns None only for
    a route that explicitly opted out (the kind logs it). `counters`: its `/metrics` counters.
    Only the engine's own distribution declares guards (`engine.config.kinds`)."""

    name: str
    settings: type
    build: GuardFactory
    doc: str
    store_extension: StoreExtension | None = None
    counters: tuple[DecisionCounter, ...] = ()
    meanings: Mapping[str, str] = field(default_factory=dict)  # its detail codes'
