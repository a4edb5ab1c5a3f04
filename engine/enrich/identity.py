"""Reading the local identity from PID (and ZFD) where IHE PAM France 2.11 puts it.

Reading never raises for bad data: missing fields read as empty strings. Whether the traits
are usable is decided by `LocalIdentity.traits()`, which raises `InvalidTraitsError` with a
code naming the field (never its value).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from engine.enrich.outcome import ReceivedIns
from engine.hl7.escape import unescape
from engine.hl7.message import Message, Segment, Separators, component
from engine.ins.errors import InvalidTraitsError
from engine.ins.oids import parse_oid
from engine.ins.traits import IdentityTraits, normalise_name, normalise_traits

LEGAL_NAME = "L"  # XPN-7 of the birth (legal) name
BIRTH_PLACE = "BDL"  # XAD-7 of the birth place
INS_TYPE = "INS"  # CX-5 of an INS repetition
BILLING_NIR_TYPE = "NH"  # CX-5 of the billing NIR: never an INS, never touched
LOCAL_ID_TYPE = "PI"  # CX-5 of the local patient identifier
_INS_NAMESPACES = frozenset({"ASIP-SANTE-INS-NIR", "ASIP-SANTE-INS-NIA"})


@dataclass(frozen=True, slots=True)
class InsRepetition:
    """An INS repetition of PID-3 and its position there."""

    index: int
    received: ReceivedIns


@dataclass(frozen=True, slots=True)
class LocalIdentity:
    """The identity a source sent, unescaped but otherwise as written."""

    pid_index: int
    legal_names: int  # PID-5 repetitions of type L: exactly one is usable
    birth_name: str
    first_name: str  # XPN-2: the first birth first name
    first_names: str  # XPN-3: the full list, space separated
    birth_date: str  # PID-7 as written
    sex: str
    birth_place: str
    status: str  # PID-32, first repetition
    attributes: frozenset[str]  # PID-32, every repetition (FICT, DOUT, HOMA…)
    local_id: str | None
    ins: tuple[InsRepetition, ...]
    document: str  # ZFD-7: the identity document checked

    def __repr__(self) -> str:
        return f"LocalIdentity(status={self.status!r}, ins={len(self.ins)})"

    def traits(self, today: dt.date | None = None) -> IdentityTraits:
        """The traits normalised as INSi expects them, or `InvalidTraitsError`."""
        if self.legal_names != 1:
            raise InvalidTraitsError(
                "PID-5: exactly one repetition of type L",
                code="no_legal_name" if not self.legal_names else "several_legal_names",
            )
        return normalise_traits(
            IdentityTraits(
                birth_name=self.birth_name,
                first_names=self._first_names(),
                sex=self.sex,
                birth_date=_birth_date(self.birth_date),
                birth_place=self.birth_place or None,
            ),
            today,
        )

    def _first_names(self) -> tuple[str, ...]:
        """XPN-3 when given (it must start with XPN-2), else XPN-2 alone."""
        if not self.first_names:
            return (self.first_name,)
        if self.first_name:
            first = normalise_name(self.first_name, "first_name")
            listed = normalise_name(self.first_names, "first_names")
            if listed != first and not listed.startswith(first + " "):
                raise InvalidTraitsError(
                    "PID-5: XPN-2 is not the first name of the XPN-3 list",
                    code="first_name_not_in_list",
                )
        return (self.first_names,)


def _birth_date(text: str) -> dt.date:
    """PID-7 (DTM): a full date is required; a partial ("lunar") one cannot be searched."""
    digits = text[:8]
    if len(digits) < 8 or not digits.isdigit():
        raise InvalidTraitsError("PID-7: a full birth date YYYYMMDD", code="invalid_date")
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise InvalidTraitsError("PID-7: a real calendar date", code="invalid_date") from None


def single_pid(message: Message) -> int | None:
    """Index of the PID segment, or None unless the message has exactly one."""
    found = list(message.indexes("PID"))
    return found[0] if len(found) == 1 else None


def is_ins_repetition(cx: str, separators: Separators) -> bool:
    """CX-5 = INS, or an INS assigning authority in CX-4; a billing NIR (NH) never is."""
    kind = component(cx, 5, separators.component)
    if kind == BILLING_NIR_TYPE:
        return False
    if kind == INS_TYPE:
        return True
    authority = component(cx, 4, separators.component).split(separators.subcomponent)
    return authority[0] in _INS_NAMESPACES or (
        len(authority) > 1 and parse_oid(authority[1]) is not None
    )


def legal_name_index(repetitions: list[str], separators: Separators) -> int | None:
    """Position of the first PID-5 repetition of type L."""
    return _typed_index(repetitions, 7, LEGAL_NAME, separators)


def birth_place_index(repetitions: list[str], separators: Separators) -> int | None:
    """Position of the first PID-11 repetition of type BDL."""
    return _typed_index(repetitions, 7, BIRTH_PLACE, separators)


def _typed_index(
    repetitions: list[str], number: int, kind: str, separators: Separators
) -> int | None:
    return next(
        (
            i
            for i, rep in enumerate(repetitions)
            if component(rep, number, separators.component) == kind
        ),
        None,
    )


def read_identity(message: Message, pid_index: int) -> LocalIdentity:
    """Read the identity from the PID at `pid_index` and the first ZFD."""
    pid = message.segment_at(pid_index)
    separators = message.separators

    def text(value: str, number: int = 1) -> str:
        return unescape(component(value, number, separators.component), separators).strip()

    names = pid.repetitions(5)
    legal = legal_name_index(names, separators)
    legal_name = names[legal] if legal is not None else ""
    places = pid.repetitions(11)
    place = birth_place_index(places, separators)
    statuses = [text(rep).upper() for rep in pid.repetitions(32)]
    zfd = message.segment("ZFD")
    return LocalIdentity(
        pid_index=pid_index,
        legal_names=sum(component(name, 7, separators.component) == LEGAL_NAME for name in names),
        # XPN-1 is an FN: the surname is its first subcomponent.
        birth_name=text(
            component(legal_name, 1, separators.component).split(separators.subcomponent)[0]
        ),
        first_name=text(legal_name, 2),
        first_names=text(legal_name, 3),
        birth_date=text(pid.field(7)),
        sex=text(pid.field(8)),
        birth_place=text(places[place], 9) if place is not None else "",
        status=statuses[0] if statuses else "",
        attributes=frozenset(statuses),
        local_id=_local_id(pid, separators),
        ins=_ins_repetitions(pid, separators),
        document=text(zfd.field(7)) if zfd is not None else "",
    )


def _local_id(pid: Segment, separators: Separators) -> str | None:
    for cx in pid.repetitions(3):
        if component(cx, 5, separators.component) == LOCAL_ID_TYPE:
            return unescape(component(cx, 1, separators.component), separators)
    return None


def _ins_repetitions(pid: Segment, separators: Separators) -> tuple[InsRepetition, ...]:
    found = []
    for index, cx in enumerate(pid.repetitions(3)):
        if is_ins_repetition(cx, separators):
            authority = component(cx, 4, separators.component)
            oid = component(authority, 2, separators.subcomponent)
            found.append(
                InsRepetition(
                    index,
                    ReceivedIns(
                        matricule=unescape(component(cx, 1, separators.component), separators),
                        oid=unescape(oid, separators),
                    ),
                )
            )
    return tuple(found)
