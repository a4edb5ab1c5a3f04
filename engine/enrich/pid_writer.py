"""Writing the INS, INSi's traits and the acquisition mode into a message, and nothing else.

Each function changes only the repetitions and components PAM FR names; every other
repetition, component and separator of the segment stays as received. Values are escaped
with the message's own delimiters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from engine.enrich.identity import INS_TYPE, birth_place_index, legal_name_index
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


def ins_repetition(ins: Ins, separators: Separators) -> str:
    """`<matricule>^^^<namespace>&<OID>&ISO^INS`, with the OID INSi returned."""
    authority = separators.subcomponent.join(
        escape(part, separators) for part in (ins.oid.hl7_namespace or "", ins.oid.value, "ISO")
    )
    return separators.component.join((str(ins.matricule), "", "", authority, INS_TYPE))


def without_repetitions(pid: Segment, indexes: Iterable[int]) -> Segment:
    """PID with the given PID-3 repetitions removed (the received INS ones)."""
    dropped = set(indexes)
    kept = [cx for i, cx in enumerate(pid.repetitions(3)) if i not in dropped]
    return pid.with_field(3, pid.separators.repetition.join(kept))


def with_ins(pid: Segment, ins: Ins) -> Segment:
    """PID with the INS repetition appended after the existing PID-3 repetitions."""
    repetitions = [*pid.repetitions(3), ins_repetition(ins, pid.separators)]
    return pid.with_field(3, pid.separators.repetition.join(repetitions))


def with_traits(pid: Segment, traits: ReturnedTraits) -> Segment:
    """PID carrying INSi's traits unaltered: PID-5 L (XPN-1/2/3), PID-7, PID-8, PID-11 BDL.

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
        index = birth_place_index(places, separators)
        if index is None:
            places.append(_set_components("", {7: "BDL", 9: traits.birth_place}, separators))
        else:
            places[index] = _set_components(places[index], {9: traits.birth_place}, separators)
        pid = pid.with_field(11, separators.repetition.join(places))
    return pid


def zfd_time(moment: dt.datetime) -> str:
    """HL7 DTM in UTC with its offset, so that no reader mistakes it for local time."""
    return moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S+0000")


def stamp_zfd(message: Message, pid_index: int, called_at: dt.datetime) -> None:
    """Set ZFD-5 = INSI and ZFD-6 = the INSi call time; create ZFD if the message has none."""
    index = next(message.indexes("ZFD"), None)
    zfd = Segment("ZFD", message.separators) if index is None else message.segment_at(index)
    zfd = zfd.with_field(5, ACQUISITION_INSI).with_field(6, zfd_time(called_at))
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
