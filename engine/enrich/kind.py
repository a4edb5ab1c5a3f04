"""The `ins_enrich` step kind: INS enrichment registered like any other kind.

Its settings are `EnrichSettings`; it shares one INSi service per engine (the `[insi]`
section), whose results are cached in the store when there is one, whose health the
engine publishes for `queue status` and whose certificate's expiry it watches; its tables
are its store extension (`engine.enrich.store`). It declares what the engine's core knows
nothing of: the `[insi]` section, the `enrich` and `enrichment` keys of a route (one step of
this kind on a route that lists no `steps`), INSi's checks before start, the count of
enrichment outcomes and INSi's families on `/metrics` (`engine.ins.metrics`), and what the
engine's shell shows of the INSi service (`engine.ins.panel`).

Loading a configuration loads this declaration (it names the `[insi]` section, and INSi's
metric families, which need prometheus_client only), not the enrichment itself: the step,
the INSi service (httpx, zeep) and the certificate checks are imported when a route's step
is built or a route that enriches is checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from engine.base.metrics import DecisionCounter
from engine.config.loader import Key
from engine.config.settings import Config
from engine.coordination.state import StatePublisher
from engine.enrich.meanings import DETAIL_MEANINGS, OUTCOME_MEANINGS
from engine.enrich.outcome import NEEDS_ACTION, Outcome
from engine.enrich.settings import EnrichSettings
from engine.enrich.store import KIND, IdentityTables, StoredResultCache
from engine.errors import ConfigError
from engine.ins.errors import InsiConfigurationError
from engine.ins.metrics import InsiMetrics
from engine.ins.settings import InsiSettings
from engine.steps.kind import StepContext, StepKind
from engine.steps.pipeline import Step

if TYPE_CHECKING:
    from engine.ins.expiry import ExpiryWatch
    from engine.ins.service import InsiService

INSI = "insi"  # the shared resource's key


async def build(settings: EnrichSettings, context: StepContext) -> Step:
    from engine.enrich.holds import identity_holds
    from engine.enrich.step import EnrichStep

    insi = await context.resources.get(INSI, lambda: _open_insi(context))
    route = next((r for r in context.config.routes if r.name == context.route), None)
    guarded = route is None or route.ins_guard.strip_unqualified_ins
    holds = await identity_holds(context)
    return EnrichStep(settings, insi, strip_unqualified_ins=guarded, holds=holds)


async def _open_insi(context: StepContext) -> InsiService:
    from engine.ins.panel import InsiPanel
    from engine.ins.service import open_insi_service

    cache = StoredResultCache(context.store) if context.store is not None else None
    families = context.metrics.component(KIND, InsiMetrics) if context.metrics else None
    try:
        insi = await open_insi_service(
            context.config.insi, cache=cache, clock=context.clock, metrics=families
        )
    except InsiConfigurationError as error:  # e.g. an unreadable certificate
        raise ConfigError(context.config.source, "insi", str(error)) from None
    context.resources.show(INSI, InsiPanel(insi))
    if context.state is not None:
        _publish_health(insi, context.state)
        if insi.certificate_expires_at is not None:
            expires_at = insi.certificate_expires_at
            await context.resources.get(f"{INSI}-certificate", lambda: _watch(expires_at))
    return insi


async def _watch(expires_at: float) -> ExpiryWatch:
    from engine.ins.expiry import ExpiryWatch

    return ExpiryWatch(expires_at)


def preflight(config: Config) -> Iterator[tuple[str, str]]:
    """INSi's certificates and files (`engine.ins.preflight`), checked when a route enriches."""
    from engine.ins.preflight import insi_problems

    yield from insi_problems(config)


def _publish_health(insi: InsiService, state: StatePublisher) -> None:
    """INSi's state for `queue status`: now, then at each change."""
    board = insi.health
    board.on_change = lambda health: state.publish("insi", json.dumps(health.to_json()))
    board.on_change(board.health)


def implicit_step(keys: Mapping[str, Any]) -> EnrichSettings | None:
    """A route without `steps` enriches (as earlier configurations did) unless `enrich = false`."""
    if keys.get("enrich") is False:
        return None
    settings: EnrichSettings = keys.get("enrichment") or EnrichSettings()
    return settings


def handles(settings: EnrichSettings) -> list[str]:
    """The ADT events the step enriches (`check` warns of an `accept` that takes none)."""
    return [f"ADT^{event}" for event in settings.events]


ROUTE_KEYS = (
    Key(
        "enrich",
        bool | None,
        doc=f"without `steps`: false = no step, else one {KIND} step (default)",
    ),
    Key(
        "enrichment", EnrichSettings | None, doc=f"without `steps`: the options of that {KIND} step"
    ),
)
OUTCOMES = DecisionCounter(
    "ins_engine_enrichment_outcomes",
    "INS enrichment outcomes, counted when the message's routing is committed",
    ("route", "outcome"),
    KIND,
    lambda route, decision: (route, decision.outcome),
)

INS_ENRICH = StepKind(
    name=KIND,
    inline=True,
    settings=EnrichSettings,
    build=build,
    doc="adds or verifies the INS in PID through INSi (PAM FR 2.11, identity vigilance)",
    store_extension=IdentityTables(),
    sections=(Key(INSI, InsiSettings, InsiSettings, "INSi service"),),
    route_keys=ROUTE_KEYS,
    implicit_step=implicit_step,
    preflight=preflight,
    counters=(OUTCOMES,),
    metrics=InsiMetrics,
    outcomes=tuple(outcome.value for outcome in Outcome),
    attention=NEEDS_ACTION,
    meanings={**OUTCOME_MEANINGS, **DETAIL_MEANINGS},
    handles=handles,
)
