"""Who a message is about, read from its PID: the local identifier that keys its delivery
lane (one patient's messages stay in order), and the keys the message search finds it by.
Patient data: these go to the store, never to a log."""

from __future__ import annotations

from engine.hl7.message import Message, component
from engine.store.base import NO_PATIENT, PatientKeys, name_key


def patient_key_of(message: Message) -> str | None:
    """The local patient identifier (PID-3 repetition of type PI, else the first one)."""
    pid = message.segment("PID")
    if pid is None:
        return None
    separator = message.separators.component
    repetitions = pid.repetitions(3)
    for repetition in repetitions:
        if component(repetition, 5, separator) == "PI":
            return component(repetition, 1, separator) or None
    return component(repetitions[0], 1, separator) or None if repetitions else None


def patient_keys_of(message: Message) -> PatientKeys:
    """PID-3 (type PI), the first PID-5's family name, PID-7's date."""
    pid = message.segment("PID")
    if pid is None:
        return NO_PATIENT
    separator = message.separators.component
    name = pid.repetitions(5)
    family = component(name[0], 1, separator) if name else ""
    family = component(family, 1, message.separators.subcomponent)  # FN.1 of XPN.1
    return PatientKeys(
        local_id=patient_key_of(message) or "",
        family_name=name_key(family),
        birth_date=component(pid.field(7), 1, separator)[:8],
    )
