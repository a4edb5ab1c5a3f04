"""The outbound INS guard: the INS invariant enforced on every PID of every message that leaves.

Enrichment decides per event and per path; the guard does not trust any of them. The engine
runs it after every route's steps and after every destination's own steps, on whatever is
about to leave (a route cannot leave it out: `engine.steps.kind.GuardKind`), so an INS that
breaks the invariant (`engine.enrich.guard_rules`) is removed whatever put it there: an
event the route does not enrich, a merge, a message with several PID, a non-ADT message, a
spelling the enrichment does not know, a later step, or a bug.

It changes nothing but INS-looking repetitions of PID-2/3/4. What it removes is recorded as
its decision (journey, metric), and, when an INS a person must look at was removed, as the
message's identity outcome (`incoherent`, the guard's reason as detail) on the work list
and in the report, completing the enrichment's record when there is one.
"""

from __future__ import annotations

import functools
from typing import Any

from engine.base.logs import get_logger
from engine.base.metrics import DecisionCounter
from engine.enrich.carried import ins_positions
from engine.enrich.guard_rules import (
    PRODUCTION,
    TIDYING,
    MessageFacts,
    PidVerdict,
    judge,
)
from engine.enrich.guard_settings import GUARD_OFF_WARNING, InsGuardSettings
from engine.enrich.holds import HOLDING_DETAILS, IdentityHolds, hold_key, identity_holds
from engine.enrich.identity import local_id_of, source_flags
from engine.enrich.meanings import DETAIL_MEANINGS
from engine.enrich.outcome import IdentityOutcome, Outcome
from engine.enrich.pid_writer import with_only_ins
from engine.enrich.store import GUARD_KIND, GUARD_REMOVED, KIND, IdentityTables
from engine.hl7.escape import unescape
from engine.hl7.message import Message, component
from engine.steps.kind import GuardKind, StepContext
from engine.steps.pipeline import Guard, RoutedMessage, StepResult
from engine.store.decision import Decision

GUARD_FAILED = "guard_error"  # the rules raised: every INS-looking repetition was removed

log = get_logger("engine.ins_guard")


class InsGuard:
    """`guard(routed)`: enforce the invariant in place; a decision when something went."""

    def __init__(self, settings: InsGuardSettings, holds: IdentityHolds | None = None) -> None:
        self._allow_test_oids = settings.allow_test_ins
        self._holds = holds  # None without a store: nothing is held

    def __call__(self, routed: RoutedMessage) -> StepResult | None:
        message = routed.message
        pids = [index for index in message.indexes("PID") if _may_hold_ins(message, index)]
        if not pids:
            return None
        facts = functools.cache(lambda: _facts(routed))
        verdicts: list[tuple[int, PidVerdict]] = []
        for index in pids:
            try:
                verdict = judge(message.segment_at(index), facts(), self._allow_test_oids)
            except Exception as error:  # fail closed: no INS leaves a PID not worked out
                log.error(
                    "INS guard failed on a PID, every INS removed",
                    route=routed.route,
                    control_id=routed.header.control_id,
                    exc_info=error,
                )
                verdict = PidVerdict(None, GUARD_FAILED, ())
            if verdict is not None:
                message.replace(index, with_only_ins(message.segment_at(index), verdict.keep))
                verdicts.append((index, verdict))
        if not verdicts:
            return None
        routed.changed = True
        reasons = [verdict.reason for _, verdict in verdicts]
        reason = next((r for r in reasons if r not in TIDYING), reasons[0])
        needs_person = [(i, v) for i, v in verdicts if v.reason not in TIDYING]
        payload = _record(routed, needs_person, reason) if needs_person else None
        hold = None if payload is None else payload.get("hold")
        if hold is not None and self._holds is not None:
            self._holds.note(hold)
        return StepResult(GUARD_REMOVED, reason, payload=payload)


def _may_hold_ins(message: Message, index: int) -> bool:
    """A cheap look before the rules: does any PID-2/3/4 repetition look like an INS?"""
    return next(ins_positions(message.segment_at(index)), None) is not None


def _facts(routed: RoutedMessage) -> MessageFacts:
    processing = component(routed.header.processing_id, 1, routed.header.separators.component)
    # No processing id reads as production: a test OID needs the message to say otherwise.
    production = processing.strip().upper() in ("", PRODUCTION)
    return MessageFacts(production, source_flags(routed.message))


def _record(
    routed: RoutedMessage, verdicts: list[tuple[int, PidVerdict]], reason: str
) -> dict[str, Any]:
    """The identity outcome the work list and the report show: the enrichment's record,
    if the message has one, turned `incoherent` with the guard's reason."""
    first = routed.message.segment_at(verdicts[0][0])
    removed = tuple(ins for _, verdict in verdicts for ins in verdict.removed)
    enriched = _enrichment_record(routed.decisions)
    base = IdentityOutcome(
        Outcome.INCOHERENT,
        routed.header.trigger,
        routed.header.control_id,
        detail=reason,
        status=unescape(first.field(32), first.separators),
        local_id=local_id_of(first),
        removed=removed,
    ).to_record()
    record = {**base, **enriched} if enriched else base
    record.update(
        outcome=Outcome.INCOHERENT.value,
        detail=reason,
        ins=None,
        ins_removed=True,
        removed_ins=[*enriched.get("removed_ins", []), *base["removed_ins"]],
        guard=[verdict.reason for _, verdict in verdicts],
    )
    if reason in HOLDING_DETAILS:  # another person's INS at best: held until handled
        record["hold"] = hold_key(routed.header, record.get("local_id"))
    return record


def _enrichment_record(decisions: list[Decision]) -> dict[str, Any]:
    """The enrichment step's record of this message, if it ran."""
    return next(
        (
            dict(decision.payload)
            for decision in reversed(decisions)
            if decision.kind == KIND and isinstance(decision.payload, dict)
        ),
        {},
    )


async def build(settings: InsGuardSettings, context: StepContext) -> Guard | None:
    if settings.opted_out:
        log.warning(GUARD_OFF_WARNING, route=context.route)
        return None
    return InsGuard(settings, await identity_holds(context))


REMOVALS = DecisionCounter(
    "ins_engine_ins_guard_removals",
    "Messages the outbound INS guard took INS out of, by reason (the first found)",
    ("route", "destination", "reason"),
    GUARD_KIND,
    lambda route, decision: (
        (route, decision.destination, decision.detail)
        if decision.outcome == GUARD_REMOVED
        else None
    ),
)

INS_GUARD = GuardKind(
    name=GUARD_KIND,
    settings=InsGuardSettings,
    build=build,
    doc="removes every INS that breaks the INS invariant from every PID of every message "
    "that leaves (the route's `ins_guard` table)",
    store_extension=IdentityTables(GUARD_KIND),
    counters=(REMOVALS,),
    meanings=DETAIL_MEANINGS,
)
