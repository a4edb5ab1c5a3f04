"""The `ins_enrich` step kind: INS enrichment registered like any other kind.

Its settings are `EnrichSettings`; it shares one INSi service per engine (the `[insi]`
section), whose results are cached in the store when there is one, whose health the
engine publishes for `queue status` and whose certificate's expiry it watches; its tables
are its store extension (`engine.enrich.store`).
"""

from __future__ import annotations

import json

from engine.coordination.state import StatePublisher
from engine.enrich.holds import IdentityHolds
from engine.enrich.settings import EnrichSettings
from engine.enrich.step import EnrichStep
from engine.enrich.store import KIND, IdentityTables, StoredResultCache
from engine.errors import ConfigError
from engine.ins.errors import InsiConfigurationError
from engine.ins.expiry import ExpiryWatch
from engine.ins.service import InsiService, open_insi_service
from engine.steps.kind import Resources, StepContext, StepKind
from engine.steps.pipeline import Step

INSI = "insi"  # the shared resource's key


async def build(settings: EnrichSettings, context: StepContext) -> Step:
    insi = await context.resources.get(INSI, lambda: _open_insi(context))
    route = next((r for r in context.config.routes if r.name == context.route), None)
    guarded = route is None or route.ins_guard.strip_unqualified_ins
    holds = IdentityHolds(context.store) if context.store is not None else None
    return EnrichStep(settings, insi, strip_unqualified_ins=guarded, holds=holds)


def shared_insi(resources: Resources) -> InsiService | None:
    """The engine's INSi service, once a step opened it (None when no route enriches)."""
    insi: InsiService | None = resources.opened(INSI)
    return insi


async def _open_insi(context: StepContext) -> InsiService:
    cache = StoredResultCache(context.store) if context.store is not None else None
    try:
        insi = await open_insi_service(
            context.config.insi, cache=cache, clock=context.clock, metrics=context.metrics
        )
    except InsiConfigurationError as error:  # e.g. an unreadable certificate
        raise ConfigError(context.config.source, "insi", str(error)) from None
    if context.state is not None:
        _publish_health(insi, context.state)
        if insi.certificate_expires_at is not None:
            expires_at = insi.certificate_expires_at
            await context.resources.get(f"{INSI}-certificate", lambda: _watch(expires_at))
    return insi


async def _watch(expires_at: float) -> ExpiryWatch:
    return ExpiryWatch(expires_at)


def _publish_health(insi: InsiService, state: StatePublisher) -> None:
    """INSi's state for `queue status`: now, then at each change."""
    board = insi.health
    board.on_change = lambda health: state.publish("insi", json.dumps(health.to_json()))
    board.on_change(board.health)


INS_ENRICH = StepKind(
    name=KIND,
    settings=EnrichSettings,
    build=build,
    doc="adds or verifies the INS in PID through INSi (PAM FR 2.11, identity vigilance)",
    store_extension=IdentityTables(),
)
