"""The decision: what to do with a message, before any INSi call. Pure lookup tables.

Two questions, asked in order: is this message enriched at all (message type, event)? and,
for the identity it carries, may INSi be called and may an INS travel with it? An INS may
travel only with a qualified identity: PID-32 `VALI` (document checked by the source) and
an INS found or verified by INSi.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from engine.enrich.identity import LocalIdentity
from engine.enrich.outcome import Outcome
from engine.enrich.settings import LIFECYCLE_EVENTS, EnrichSettings
from engine.ins.outcome import SearchStatus

ENRICHED_MESSAGE_TYPE = "ADT"
VALIDATED = "VALI"
PROVISIONAL = "PROV"
NEVER_QUALIFIED = frozenset({"FICT", "DOUT"})  # fictive, doubtful


class Standing(enum.Enum):
    """Where the identity stands for the purpose of INSi, from PID-32 and ZFD-7."""

    VALIDATED = "validated"  # VALI (and ZFD-7 when the route requires it)
    UNDOCUMENTED = "undocumented"  # VALI without ZFD-7 on a route that requires it
    PROVISIONAL = "provisional"  # PROV or no status
    PROVISIONAL_SEARCHED = "provisional_searched"  # same, on a route that searches them
    NEVER_QUALIFIED = "never_qualified"  # FICT or DOUT attribute
    OTHER = "other"  # any other status (VIDE, DOUB, DESA…)


class Action(enum.Enum):
    """What the step does; every action but VERIFY success leaves no INS it did not add."""

    NO_CALL = "no_call"  # no INSi call; any INS the message carries is removed
    ADD = "add"  # search; add the INS and INSi's traits when coherent
    VERIFY = "verify"  # search; keep the carried INS only if INSi returns the same
    RECUPEREE = "recuperee"  # search; record the INS, never write it; remove any carried


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    detail: str  # short code for the outcome record
    outcome: Outcome | None = None  # known before any call (NO_CALL only)


def pass_reason(message_type: str, trigger: str, settings: EnrichSettings) -> str | None:
    """Why the message passes through untouched, or None when it is to be enriched."""
    if message_type != ENRICHED_MESSAGE_TYPE:
        return "message_type"
    if trigger in LIFECYCLE_EVENTS:
        return "ins_lifecycle_event"
    if trigger not in settings.events:
        return "event_not_enriched"
    return None


def standing(identity: LocalIdentity, settings: EnrichSettings) -> Standing:
    if identity.attributes & NEVER_QUALIFIED:
        return Standing.NEVER_QUALIFIED
    if identity.status == VALIDATED:
        if settings.require_document and not identity.document:
            return Standing.UNDOCUMENTED
        return Standing.VALIDATED
    if identity.status in ("", PROVISIONAL):
        if settings.search_provisional:
            return Standing.PROVISIONAL_SEARCHED
        return Standing.PROVISIONAL
    return Standing.OTHER


_NOT_APPLICABLE, _INCOHERENT = Outcome.NOT_APPLICABLE, Outcome.INCOHERENT

# (standing, the message already carries an INS) → decision.
_DECISIONS: dict[tuple[Standing, bool], Decision] = {
    (Standing.VALIDATED, False): Decision(Action.ADD, ""),
    (Standing.VALIDATED, True): Decision(Action.VERIFY, ""),
    (Standing.PROVISIONAL_SEARCHED, False): Decision(Action.RECUPEREE, ""),
    (Standing.PROVISIONAL_SEARCHED, True): Decision(Action.RECUPEREE, "ins_without_vali"),
    (Standing.PROVISIONAL, False): Decision(Action.NO_CALL, "provisional", _NOT_APPLICABLE),
    (Standing.PROVISIONAL, True): Decision(Action.NO_CALL, "ins_without_vali", _INCOHERENT),
    (Standing.UNDOCUMENTED, False): Decision(Action.NO_CALL, "no_document", _NOT_APPLICABLE),
    (Standing.UNDOCUMENTED, True): Decision(Action.NO_CALL, "ins_without_document", _INCOHERENT),
    (Standing.NEVER_QUALIFIED, False): Decision(
        Action.NO_CALL, "fictive_or_doubtful", _NOT_APPLICABLE
    ),
    (Standing.NEVER_QUALIFIED, True): Decision(
        Action.NO_CALL, "ins_on_fictive_or_doubtful", _INCOHERENT
    ),
    (Standing.OTHER, False): Decision(Action.NO_CALL, "status_not_handled", _NOT_APPLICABLE),
    (Standing.OTHER, True): Decision(Action.NO_CALL, "ins_without_vali", _INCOHERENT),
}


def decide(identity: LocalIdentity, settings: EnrichSettings) -> Decision:
    """The action for an identity of a message that is to be enriched."""
    return _DECISIONS[standing(identity, settings), bool(identity.ins)]


# What a search that found no usable identity means for the message (FOUND is decided by
# the coherence check and the action).
SEARCH_OUTCOMES: dict[SearchStatus, Outcome] = {
    SearchStatus.NOT_FOUND: Outcome.NOT_FOUND,
    SearchStatus.SEVERAL: Outcome.SEVERAL_FOUND,
    SearchStatus.INVALID_TRAITS: Outcome.INVALID_TRAITS,
    SearchStatus.UNAVAILABLE: Outcome.INSI_UNAVAILABLE,
    SearchStatus.CONFIGURATION_ERROR: Outcome.INSI_UNAVAILABLE,
}
