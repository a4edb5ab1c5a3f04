"""The route step that puts the INS into PID, following PAM FR 2.11 and identity vigilance.

It reads the local identity, decides (`engine.enrich.rules`), searches INSi when allowed
(retrying technical errors within a window), checks the answer against the local traits and
writes only what PAM FR names. An admission is never blocked: whatever INSi says, the message
goes on, without an INS unless one was added or verified. Every message gets an outcome,
returned as the step's result with the full record as its payload (kept by the kind's store
extension, `engine.enrich.store`, for the identity report).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from engine.base.logs import get_logger
from engine.enrich.coherence import differing_traits
from engine.enrich.holds import HELD, HOLDING_DETAILS, IdentityHolds, hold_key
from engine.enrich.identity import LocalIdentity, local_id_of, read_identity, single_pid
from engine.enrich.memo import Effect, EnrichMemo, Search, memo_key, replay
from engine.enrich.outcome import IdentityOutcome, Outcome
from engine.enrich.pid_writer import stamp_zfd, with_only_ins, with_traits
from engine.enrich.rules import SEARCH_OUTCOMES, Action, Decision, decide, pass_reason
from engine.enrich.settings import EnrichSettings
from engine.enrich.verification import Verdict, verify
from engine.hl7.message import Message
from engine.ins.errors import InvalidTraitsError
from engine.ins.outcome import SearchOutcome, SearchStatus
from engine.ins.service import InsiService
from engine.ins.traits import IdentityTraits
from engine.steps.pipeline import RoutedMessage, StepResult

log = get_logger("enrich")


class EnrichStep:
    """`await step(routed)`: enrich one message in place; returns its outcome."""

    def __init__(
        self,
        settings: EnrichSettings,
        insi: InsiService,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        today: Callable[[], dt.date] = dt.date.today,
        strip_unqualified_ins: bool = True,
        holds: IdentityHolds | None = None,
    ) -> None:
        self._settings = settings
        self._holds = holds  # None without a store: nothing is held
        self._strip = strip_unqualified_ins  # false: the route opted out of the INS guard
        self._insi = insi
        self._clock = clock
        self._sleep = sleep
        self._today = today
        self._memo = EnrichMemo()

    async def __call__(self, routed: RoutedMessage) -> StepResult:
        started = self._clock()
        before = list(routed.message.texts)
        try:
            record = await self._enrich(routed)
        except Exception as error:  # fail closed: no INS leaves a message not worked out
            record = _without_any_ins(routed, before, error)
        if record["outcome"] == Outcome.INCOHERENT and record["detail"] in HOLDING_DETAILS:
            record["hold"] = hold = hold_key(routed.header, record.get("local_id"))
            if hold is not None and self._holds is not None:
                self._holds.note(hold)
        if routed.message.texts != before:
            routed.changed = True
        if log.is_enabled_for(logging.DEBUG):  # else its fields are not worked out at all
            self._log(routed, record, started)
        return StepResult(record["outcome"], record["detail"], payload=record)

    def _log(self, routed: RoutedMessage, record: dict[str, Any], started: float) -> None:
        log.debug(  # per message: the console, queue list --control-id and metrics carry it
            "identity enrichment",
            route=routed.route,
            control_id=routed.header.control_id,
            message_type=routed.header.shown_type,
            outcome=record["outcome"],
            code=record["detail"],
            calls=record["calls"],
            simulated=record["simulated"],
            duration_ms=round((self._clock() - started) * 1000, 3),
        )

    async def _enrich(self, routed: RoutedMessage) -> dict[str, Any]:
        """Enrich the message; its outcome record. A PID and ZFD already seen, with the same
        INSi answer, get what the first one got (`engine.enrich.memo`)."""
        header = routed.header
        base = IdentityOutcome(Outcome.NOT_APPLICABLE, header.trigger, header.control_id)
        reason = pass_reason(header.message_type, header.trigger, self._settings)
        if reason in ("message_type", "ins_lifecycle_event"):
            return replace(base, detail=reason).to_record()  # byte for byte
        message = routed.message
        pid_index = single_pid(message)
        if pid_index is None:
            return replace(base, detail="no_single_pid").to_record()
        held = await self._held(routed, pid_index, base)
        if held is not None:
            return held.to_record()
        key = memo_key(message, header, pid_index, self._today())
        known = self._memo.get(key)
        found = None
        if known is not None:
            if known.search is not None:
                found = await self._search(known.search)
            if known.holds_for(found):
                replay(message, pid_index, known)
                calls = found.calls if found is not None else 0
                return {**known.record, "control_id": header.control_id, "calls": calls}
        zfd = message.segment("ZFD")
        zfd_before = None if zfd is None else zfd.text
        outcome, search, found = await self._work_out(routed, pid_index, base, reason, found)
        record = outcome.to_record()
        if found is None or found.called_at is not None:  # else ZFD-6 would say "now"
            zfd = message.segment("ZFD")
            zfd_after = None if zfd is None or zfd.text == zfd_before else zfd.text
            self._memo.put(key, Effect(search, found, message.texts[pid_index], zfd_after, record))
        return record

    async def _work_out(
        self,
        routed: RoutedMessage,
        pid_index: int,
        base: IdentityOutcome,
        reason: str | None,
        found: SearchOutcome | None,
    ) -> tuple[IdentityOutcome, Search | None, SearchOutcome | None]:
        """Read, decide, search (unless `found` already answers), write: the outcome, and
        the search and answer it depended on."""
        identity = read_identity(routed.message, pid_index)
        base = replace(
            base,
            status=identity.status,
            local_id=identity.local_id,
            received=tuple(ins.received() for ins in identity.ins),
        )
        decision = decide(identity, self._settings)
        if reason is not None:
            passed = replace(base, detail=reason)
            return self._passed_through(routed, identity, decision, passed), None, None
        if decision.action is Action.NO_CALL_KEEP:
            assert decision.outcome is not None
            return replace(base, outcome=decision.outcome, detail=decision.detail), None, None
        if decision.action is Action.NO_CALL:
            assert decision.outcome is not None
            refused = replace(base, outcome=decision.outcome, detail=decision.detail)
            return self._without_ins(routed, identity, refused), None, None
        try:
            traits = identity.traits(self._today())
        except InvalidTraitsError as error:
            invalid = replace(base, outcome=Outcome.INVALID_TRAITS, detail=error.code)
            return self._without_ins(routed, identity, invalid), None, None
        search = Search(traits, verifying=decision.action is Action.VERIFY)
        if found is None:
            found = await self._search(search)
        searched = replace(
            base,
            calls=found.calls,
            simulated=found.simulated,
            called_at=found.called_at,
            ins=found.ins,
            traits_used=traits,
            traits_returned=found.returned_traits,
            detail=decision.detail,
        )
        if found.status is not SearchStatus.FOUND:
            missed = replace(
                searched,
                outcome=SEARCH_OUTCOMES[found.status],
                detail=found.detail or found.status.value,
            )
            return self._without_ins(routed, identity, missed), search, found
        applied = self._apply(routed, identity, decision.action, traits, found, searched)
        return applied, search, found

    async def _held(
        self, routed: RoutedMessage, pid_index: int, base: IdentityOutcome
    ) -> IdentityOutcome | None:
        """A patient held for an earlier conflict: no search, no INS (`engine.enrich.holds`)."""
        if self._holds is None:
            return None
        key = hold_key(routed.header, local_id_of(routed.message.segment_at(pid_index)))
        if key is None or not await self._holds.held(key):
            return None
        identity = read_identity(routed.message, pid_index)
        held = replace(
            base,
            outcome=Outcome.HELD,
            detail=HELD,
            status=identity.status,
            local_id=identity.local_id,
            received=tuple(ins.received() for ins in identity.ins),
        )
        return self._without_ins(routed, identity, held)

    def _passed_through(
        self,
        routed: RoutedMessage,
        identity: LocalIdentity,
        decision: Decision,
        result: IdentityOutcome,
    ) -> IdentityOutcome:
        """An event the route does not enrich: the receiver integrates an INS only with a
        clear VALI (PAM FR), so any other INS is removed, and so are INS that contradict
        each other; a VALI identity's INS passes as written (the INS guard checks it)."""
        if not identity.ins or not self._strip:
            return result
        if decision.action not in (Action.VERIFY, Action.NO_CALL_KEEP):
            outcome = decision.outcome if decision.action is Action.NO_CALL else None
            return self._without_ins(
                routed,
                identity,
                replace(result, outcome=outcome or Outcome.INCOHERENT, detail=decision.detail),
            )
        if len({(ins.canonical_matricule, ins.oid) for ins in identity.ins}) > 1:
            return self._without_ins(
                routed, identity, replace(result, outcome=Outcome.INCOHERENT, detail="several_ins")
            )
        return result

    def _apply(
        self,
        routed: RoutedMessage,
        identity: LocalIdentity,
        action: Action,
        traits: IdentityTraits,
        found: SearchOutcome,
        searched: IdentityOutcome,
    ) -> IdentityOutcome:
        """INSi found one identity: add, verify or record it, if its traits are coherent."""
        assert found.ins is not None and found.returned_traits is not None
        differing = differing_traits(traits, identity.claimed_first_names(), found.returned_traits)
        if identity.unchecked_birth_city and found.returned_traits.birth_place:
            differing = (*differing, "birth_place")
        if differing:
            code = differing[0]
            return self._without_ins(
                routed,
                identity,
                replace(
                    searched,
                    outcome=Outcome.INCOHERENT,
                    detail=code if code.startswith("returned_") else f"traits_{code}",
                    differing=differing,
                ),
            )
        if action is Action.RECUPEREE:
            return self._without_ins(routed, identity, replace(searched, outcome=Outcome.RECUPEREE))
        outcome = replace(searched, outcome=Outcome.ADDED)
        if action is Action.VERIFY:
            verdict = verify(identity.ins, found.ins, found.history)
            if verdict in (Verdict.IN_HISTORY, Verdict.MISMATCH):
                return self._without_ins(
                    routed,
                    identity,
                    replace(searched, outcome=Outcome.INCOHERENT, detail=verdict.value),
                )
            outcome = replace(
                searched,
                outcome=Outcome.VERIFIED,
                detail="history_dropped" if verdict is Verdict.HISTORY_DROPPED else "",
                removed=tuple(ins.received() for ins in identity.ins if not ins.is_(found.ins)),
            )
        message = routed.message
        pid = with_only_ins(
            with_traits(message.segment_at(identity.pid_index), found.returned_traits), found.ins
        )
        message.replace(identity.pid_index, pid)
        stamp_zfd(message, identity.pid_index, found.called_at or dt.datetime.now(dt.UTC))
        return outcome

    def _without_ins(
        self, routed: RoutedMessage, identity: LocalIdentity, result: IdentityOutcome
    ) -> IdentityOutcome:
        """Remove every INS the message carries: none may travel unverified."""
        if not identity.ins:
            return result
        message = routed.message
        message.replace(
            identity.pid_index, with_only_ins(message.segment_at(identity.pid_index), None)
        )
        return replace(result, removed=tuple(ins.received() for ins in identity.ins))

    async def _search(self, search: Search) -> SearchOutcome:
        """Search, retrying while INSi is unavailable, until the retry window has passed."""
        settings = self._settings
        deadline = self._clock() + settings.retry_window_s
        delay = settings.retry_backoff_s
        calls = 0
        while True:
            found = await self._insi.search(search.traits, verifying=search.verifying)
            calls += found.calls
            remaining = deadline - self._clock()
            if found.status is not SearchStatus.UNAVAILABLE or remaining <= 0:
                return found if found.calls == calls else replace(found, calls=calls)
            await self._sleep(min(delay, remaining))
            delay = min(delay * 2, settings.retry_backoff_max_s)


def _without_any_ins(
    routed: RoutedMessage, received: list[str], error: Exception
) -> dict[str, Any]:
    """The message as the step got it, less every INS of every PID: enrichment broke (a
    bug, not INSi), so nothing it carries can be trusted to be verified. The message goes
    on to the next steps; the decision says `error` and the exception's type."""
    log.error(
        "identity enrichment failed, every INS removed",
        route=routed.route,
        control_id=routed.header.control_id,
        exc_info=error,
    )
    message = routed.message = Message(list(received), routed.message.separators)
    for index in list(message.indexes("PID")):
        message.replace(index, with_only_ins(message.segment_at(index), None))
    return {"outcome": "error", "detail": type(error).__name__, "calls": 0, "simulated": False}
