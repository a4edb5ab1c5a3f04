"""Writing the INS, INSi's traits and the acquisition mode into a message, and nothing else.

Each function changes only the repetitions and components PAM FR names; every other
repetition, component and separator of the segment stays as received. Values are escaped
with the message's own delimiters.
"""

from __future__ import annotations

import datetime as dt

from engine.enrich.carried import INS_FIELD, INS_FIELDS, canonical_repetition, looks_like_ins
from engine.enrich.identity import is_birth_place, legal_name_index
from engine.hl7.escape import escape
from engine.hl7.message import Message, Segment, Separators
from engine.ins.result import Ins, ReturnedTraits

ACQUISITION_INSI = "INSI"  # ZFD-5: identity obtained from the INSi teleservice
# Where a new ZFD goes (PAM FR order): after PID and the segments that follow it up to ZFM,
# skipping ROL, which may come before or after ZFD.
_BEFORE_ZFD = frozenset({"PID", "PD1", "NK1", "PV1", "PV2", "ZBE", "ZFA", "ZFP", "ZFV", "ZFM"})
_SKIPPED = frozenset({"ROL"})


def _set_components(value: str, updates: dict[int, str], separators: Separators) -> str:
    """`value` with components (1-based) replaced, padding with empty ones."""
    parts = value.split(separators.component)
    parts.extend([""] * (max(updates) - len(parts)))
    for number, text in updates.items():
        parts[number - 1] = escape(text, separators)
    return separators.component.join(parts)


def with_only_ins(pid: Segment, ins: Ins | None) -> Segment:
    """PID whose only INS is `ins`, in canonical form in PID-3 (or none at all).

    Every INS-looking repetition of PID-2, PID-3 and PID-4 is removed, placeholders
    included, leaving no empty repetition behind in a field that changes; the canonical INS
    takes the place of the first one PID-3 held, or follows the existing repetitions.
    """
    separators = pid.separators
    for number in INS_FIELDS:
        repetitions = pid.repetitions(number)
        looks = [looks_like_ins(cx, separators) for cx in repetitions]
        writes = number == INS_FIELD and ins is not None
        if not any(looks) and not writes:
            continue
        kept = [cx for cx, is_ins in zip(repetitions, looks, strict=True) if cx and not is_ins]
        if writes:
            assert ins is not None
            first = looks.index(True) if any(looks) else len(repetitions)
            position = sum(
                1
                for cx, is_ins in zip(repetitions[:first], looks, strict=False)
                if cx and not is_ins
            )
            kept.insert(position, canonical_repetition(ins, separators))
        pid = pid.with_field(number, separators.repetition.join(kept))
    return pid


def with_traits(pid: Segment, traits: ReturnedTraits) -> Segment:
    """PID carrying INSi's traits unaltered: PID-5 L (XPN-1/2/3), PID-7, PID-8, PID-11 BDL
    (every BDL repetition; they agreed, or the traits would not have been searched).

    The caller guarantees a PID-5 L repetition exists (the traits were read from it).
    """
    separators = pid.separators
    names = pid.repetitions(5)
    legal = legal_name_index(names, separators)
    assert legal is not None, "traits are written only where they were read"
    names[legal] = _set_components(
        names[legal],
        {
            1: traits.birth_name,
            2: traits.first_names[0],
            3: traits.first_names_text,
        },
        separators,
    )
    pid = pid.with_field(5, separators.repetition.join(names))
    birth_date = traits.birth_date.replace("-", "")
    if not pid.field(7).startswith(birth_date):  # keep a birth time that follows the date
        pid = pid.with_field(7, escape(birth_date, separators))
    pid = pid.with_field(8, escape(traits.sex, separators))
    if traits.birth_place:
        places = pid.repetitions(11)
        if not any(is_birth_place(place, separators) for place in places):
            places.append(_set_components("", {7: "BDL", 9: traits.birth_place}, separators))
        places = [
            _set_components(place, {9: traits.birth_place}, separators)
            if is_birth_place(place, separators)
            else place
            for place in places
        ]
        pid = pid.with_field(11, separators.repetition.join(places))
    return pid


def zfd_time(moment: dt.datetime) -> str:
    """HL7 DTM in UTC with its offset, so that no reader mistakes it for local time."""
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S+0000")


def stamp_zfd(message: Message, pid_index: int, called_at: dt.datetime) -> None:
    """Set ZFD-5 = INSI and ZFD-6 = the INSi call time; create ZFD if the message has none."""
    zfd = message.segment("ZFD") or Segment("ZFD", message.separators)
    put_zfd(
        message, pid_index, zfd.with_field(5, ACQUISITION_INSI).with_field(6, zfd_time(called_at))
    )


def put_zfd(message: Message, pid_index: int, zfd: Segment) -> None:
    """`zfd` in place of the message's first ZFD, or, when it has none, where PAM FR puts it."""
    index = next(message.indexes("ZFD"), None)
    if index is None:
        message.insert(_new_zfd_position(message, pid_index), zfd)
    else:
        message.replace(index, zfd)


def _new_zfd_position(message: Message, pid_index: int) -> int:
    position = pid_index + 1
    for index in range(pid_index + 1, len(message)):
        name = message.texts[index][:3]
        if name in _BEFORE_ZFD:
            position = index + 1
        elif name not in _SKIPPED:
            break
    return position
