"""The decision: what to do with a message, before any INSi call. Pure lookup tables.

Two questions, asked in order: is this message enriched at all (message type, event)? and,
for the identity it carries, may INSi be called and may an INS travel with it? An INS may
travel only with a qualified identity: PID-32 exactly `VALI` (document checked by the
source) and an INS found or verified by INSi. When the input is ambiguous the answer is
"no INS, reported for a person", never "INS".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from engine.enrich.identity import LocalIdentity
from engine.enrich.outcome import Outcome
from engine.enrich.reliability import FICTIVE_OR_DOUBTFUL, PROVISIONAL, VALIDATED
from engine.enrich.settings import LIFECYCLE_EVENTS, EnrichSettings
from engine.ins.outcome import SearchStatus

ENRICHED_MESSAGE_TYPE = "ADT"
APPLI_CARTE_VITALE = "appli_carte_vitale"  # the detail: the RNIV excludes calling INSi


class Standing(enum.Enum):
    """Where the identity stands for the purpose of INSi, from PID-32, PID-31 and ZFD."""

    VALIDATED = "validated"  # exactly VALI (and ZFD-7 when the route requires it)
    UNDOCUMENTED = "undocumented"  # VALI without ZFD-7 on a route that requires it
    PROVISIONAL = "provisional"  # PROV or no status
    PROVISIONAL_SEARCHED = "provisional_searched"  # same, on a route that searches them
    NEVER_QUALIFIED = "never_qualified"  # FICT or DOUT anywhere in PID-32
    OTHER = "other"  # another status, several, an unknown code, a malformed field
    NOT_QUALIFIABLE = "not_qualifiable"  # the source says its traits are not INSi's
    APPLI_CARTE_VITALE = "appli_carte_vitale"  # VALI collected through the Appli carte Vitale


class Action(enum.Enum):
    """What the step does; every action but VERIFY success and NO_CALL_KEEP leaves no INS it
    did not add."""

    NO_CALL = "no_call"  # no INSi call; any INS the message carries is removed
    ADD = "add"  # search; add the INS and INSi's traits when coherent
    VERIFY = "verify"  # search; keep the carried INS only if INSi returns the same
    RECUPEREE = "recuperee"  # search; record the INS, never write it; remove any carried
    NO_CALL_KEEP = "no_call_keep"  # no INSi call; the carried INS is left to the INS guard


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    detail: str  # short code for the outcome record
    outcome: Outcome | None = None  # known before any call (NO_CALL only)


def pass_reason(message_type: str, trigger: str, settings: EnrichSettings) -> str | None:
    """Why the message is not enriched, or None when it is."""
    if message_type != ENRICHED_MESSAGE_TYPE:
        return "message_type"
    if trigger in LIFECYCLE_EVENTS:
        return "ins_lifecycle_event"
    if trigger not in settings.events:
        return "event_not_enriched"
    return None


def standing(identity: LocalIdentity, settings: EnrichSettings) -> tuple[Standing, str]:
    """The identity's standing and the reason code recorded when no INS is carried."""
    reliability = identity.reliability
    if reliability.problem == FICTIVE_OR_DOUBTFUL:
        return Standing.NEVER_QUALIFIED, FICTIVE_OR_DOUBTFUL
    if reliability.problem is not None:
        return Standing.OTHER, reliability.problem
    if reliability.status == VALIDATED:
        if identity.appli_carte_vitale:
            return Standing.APPLI_CARTE_VITALE, APPLI_CARTE_VITALE
        if settings.require_document and not identity.document:
            return Standing.UNDOCUMENTED, "no_document"
        return _unless_flagged(identity, Standing.VALIDATED)
    if reliability.status in ("", PROVISIONAL):
        if settings.search_provisional and identity.appli_carte_vitale:
            return Standing.PROVISIONAL, APPLI_CARTE_VITALE
        if settings.search_provisional:
            return _unless_flagged(identity, Standing.PROVISIONAL_SEARCHED)
        return Standing.PROVISIONAL, "provisional"
    return Standing.OTHER, "status_not_handled"


def _unless_flagged(identity: LocalIdentity, searched: Standing) -> tuple[Standing, str]:
    """What the source says of its own identity: with an unknown identity or a birth date
    that is not INSi's by design, nothing may be matched automatically."""
    for flagged, code in (
        (identity.identity_unknown, "identity_unknown"),
        (identity.lunar_birth_date, "lunar_birth_date"),
        (identity.birth_date_corrected, "birth_date_corrected"),
    ):
        if flagged:
            return Standing.NOT_QUALIFIABLE, code
    return searched, ""


_NOT_APPLICABLE, _INCOHERENT = Outcome.NOT_APPLICABLE, Outcome.INCOHERENT
_REASON = ""  # the detail is the standing's reason code

# (standing, the message already carries an INS) → decision.
_DECISIONS: dict[tuple[Standing, bool], Decision] = {
    (Standing.VALIDATED, False): Decision(Action.ADD, ""),
    (Standing.VALIDATED, True): Decision(Action.VERIFY, ""),
    (Standing.PROVISIONAL_SEARCHED, False): Decision(Action.RECUPEREE, ""),
    (Standing.PROVISIONAL_SEARCHED, True): Decision(Action.RECUPEREE, "ins_without_vali"),
    (Standing.PROVISIONAL, False): Decision(Action.NO_CALL, _REASON, _NOT_APPLICABLE),
    (Standing.PROVISIONAL, True): Decision(Action.NO_CALL, "ins_without_vali", _INCOHERENT),
    (Standing.UNDOCUMENTED, False): Decision(Action.NO_CALL, _REASON, _NOT_APPLICABLE),
    (Standing.UNDOCUMENTED, True): Decision(Action.NO_CALL, "ins_without_document", _INCOHERENT),
    (Standing.NEVER_QUALIFIED, False): Decision(Action.NO_CALL, _REASON, _NOT_APPLICABLE),
    (Standing.NEVER_QUALIFIED, True): Decision(
        Action.NO_CALL, "ins_on_fictive_or_doubtful", _INCOHERENT
    ),
    (Standing.OTHER, False): Decision(Action.NO_CALL, _REASON, _NOT_APPLICABLE),
    (Standing.OTHER, True): Decision(Action.NO_CALL, "ins_without_vali", _INCOHERENT),
    (Standing.NOT_QUALIFIABLE, False): Decision(Action.NO_CALL, _REASON, Outcome.NOT_QUALIFIABLE),
    (Standing.NOT_QUALIFIABLE, True): Decision(Action.NO_CALL, _REASON, Outcome.NOT_QUALIFIABLE),
    # RNIV: no INSi call for an identity from the Appli carte Vitale, which is qualified as
    # collected; the INS it came with leaves if the guard finds it whole.
    (Standing.APPLI_CARTE_VITALE, False): Decision(Action.NO_CALL, _REASON, _NOT_APPLICABLE),
    (Standing.APPLI_CARTE_VITALE, True): Decision(Action.NO_CALL_KEEP, _REASON, _NOT_APPLICABLE),
}
_VERIFY_ONLY = Decision(Action.NO_CALL, "verify_only", _NOT_APPLICABLE)


def decide(identity: LocalIdentity, settings: EnrichSettings) -> Decision:
    """The action for an identity of a message that is to be enriched."""
    position, reason = standing(identity, settings)
    decision = _DECISIONS[position, bool(identity.ins)]
    if decision.action is Action.ADD and settings.verify_only:
        return _VERIFY_ONLY
    if not decision.detail and reason:
        return replace(decision, detail=reason)
    return decision


# What a search that found no usable identity means for the message (FOUND is decided by
# the coherence check and the action).
SEARCH_OUTCOMES: dict[SearchStatus, Outcome] = {
    SearchStatus.NOT_FOUND: Outcome.NOT_FOUND,
    SearchStatus.SEVERAL: Outcome.SEVERAL_FOUND,
    SearchStatus.INVALID_TRAITS: Outcome.INVALID_TRAITS,
    SearchStatus.INVALID_ANSWER: Outcome.INVALID_INSI_ANSWER,
    SearchStatus.UNAVAILABLE: Outcome.INSI_UNAVAILABLE,
    SearchStatus.CONFIGURATION_ERROR: Outcome.INSI_UNAVAILABLE,
}
