"""What the enrichment step did to one message, as stored for the identity-vigilance report.

The record is the one place where patient identity (traits, matricules) may appear: it goes
to the store, never to a log. Its `repr` is redacted for that reason.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from engine.ins.result import Ins, ReturnedTraits
from engine.ins.traits import IdentityTraits


class Outcome(enum.StrEnum):
    """The result of enriching one message; only ADDED and VERIFIED leave an INS in it."""

    ADDED = "added"
    VERIFIED = "verified"
    RECUPEREE = "recuperee"
    NOT_FOUND = "not_found"
    SEVERAL_FOUND = "several_found"
    INCOHERENT = "incoherent"
    INVALID_TRAITS = "invalid_traits"
    NOT_QUALIFIABLE = "not_qualifiable"  # the source says its traits are not INSi's
    INVALID_INSI_ANSWER = "invalid_insi_answer"  # INSi's answer failed validation
    INSI_UNAVAILABLE = "insi_unavailable"
    HELD = "held"  # an earlier conflict of this patient awaits the vigilance team
    NOT_APPLICABLE = "not_applicable"


NEEDS_ACTION = frozenset(
    {
        Outcome.NOT_FOUND,
        Outcome.SEVERAL_FOUND,
        Outcome.INCOHERENT,
        Outcome.RECUPEREE,
        Outcome.NOT_QUALIFIABLE,
        Outcome.INVALID_INSI_ANSWER,
        Outcome.INSI_UNAVAILABLE,
    }
)
"""INSi answered 01 or 02, the identity contradicts INSi, an INS awaits a document check, the
source says its identity cannot be matched automatically, or INSi could not be asked (or
answered wrongly): in every case a person must search this patient again."""


@dataclass(frozen=True, slots=True)
class ReceivedIns:
    """An INS repetition as the message carried it (matricule and OID text, unchecked)."""

    matricule: str
    oid: str


@dataclass(frozen=True, slots=True)
class IdentityOutcome:
    """One message's enrichment: outcome, cost, and what the vigilance team needs to review.

    `detail` is a short code (safe to log); `ins` is what INSi returned, `received` the INS
    the message carried, `removed` those the engine took out; `differing` names the traits
    that contradict INSi's.
    """

    outcome: Outcome
    event: str
    control_id: str
    detail: str = ""
    status: str = ""
    local_id: str | None = None
    calls: int = 0
    simulated: bool = False
    called_at: dt.datetime | None = None
    ins: Ins | None = None
    received: tuple[ReceivedIns, ...] = ()
    removed: tuple[ReceivedIns, ...] = ()
    differing: tuple[str, ...] = ()
    traits_used: IdentityTraits | None = None
    traits_returned: ReturnedTraits | None = None

    def __repr__(self) -> str:
        return f"IdentityOutcome({self.outcome.value}, detail={self.detail!r}, calls={self.calls})"

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict for the store (holds patient identity: never log it)."""
        return {
            "outcome": self.outcome.value,
            "detail": self.detail,
            "event": self.event,
            "control_id": self.control_id,
            "status": self.status,
            "local_id": self.local_id,
            "calls": self.calls,
            "simulated": self.simulated,
            "called_at": self.called_at.isoformat() if self.called_at else None,
            "ins": _ins_record(self.ins),
            "received_ins": [{"matricule": r.matricule, "oid": r.oid} for r in self.received],
            "ins_removed": bool(self.removed),
            "removed_ins": [{"matricule": r.matricule, "oid": r.oid} for r in self.removed],
            "traits_differing": list(self.differing),
            "traits_used": _traits_record(self.traits_used),
            "traits_returned": _traits_record(self.traits_returned),
        }


def _ins_record(ins: Ins | None) -> dict[str, str] | None:
    return None if ins is None else {"matricule": str(ins.matricule), "oid": ins.oid.value}


def _traits_record(traits: IdentityTraits | ReturnedTraits | None) -> dict[str, Any] | None:
    """Local traits (a date) and INSi's (ISO text, kept as returned) in one shape."""
    if traits is None:
        return None
    birth_date = traits.birth_date
    return {
        "birth_name": traits.birth_name,
        "first_names": list(traits.first_names),
        "sex": traits.sex,
        "birth_date": birth_date if isinstance(birth_date, str) else birth_date.isoformat(),
        "birth_place": traits.birth_place,
    }
