"""Realistic PAM FR 2.11 ADT messages for the benchmarks (about 450 bytes each)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TEMPLATE = (
    "MSH|^~\\&|PAS|CHU-EXEMPLE|INS-ENGINE|CHU-EXEMPLE|{at}||ADT^{event}^ADT_A05|{id}|P|"
    "2.5^FRA^2.11|||||FRA|8859/1|||2.11^IHE_FRANCE-2.11-PAM\r"
    "EVN||{at}|||JDUPONT^DUPONT^JEAN\r"
    "PID|1||{pid}^^^CHU-EXEMPLE&1.2.250.1.999.1.1&ISO^PI||^{first}^^^^^D~{last}^{first}^"
    "{all_first}^^^^L||{birth}|{sex}|||12 RUE DES LILAS^^CLERMONT-FERRAND^^63000^FRA^H~"
    "^^^^^FRA^BDL^^{place}||0473000000^PRN^PH|||||||||||||||||||VALI\r"
    "PV1|1|N\r"
    "ZFD|||||SM||CN|20300101\r"
)


@dataclass(frozen=True)
class Patient:
    birth_name: str
    first_names: tuple[str, ...]
    birth_date: str  # YYYYMMDD
    sex: str
    birth_place: str


DEFAULT_PATIENT = Patient("MARTIN", ("PAUL",), "19800101", "M", "63113")


def patients_from_simulator(count: int, seed: int = 0) -> list[Patient]:
    """Patients the INSi simulator knows (its synthetic persons), so searches find them."""
    from engine.ins.simulator.synthetic import synthetic_persons

    return [
        Patient(p.birth_name, p.first_names, p.birth_date.strftime("%Y%m%d"), p.sex, p.birth_place)
        for p in synthetic_persons(count, seed)
    ]


# The event time (MSH-7, EVN-2) of each trigger event: an update comes after the creation, as
# a FHIR destination requires (it never writes an older event over a newer one).
EVENT_TIMES = {"A28": "20260101120000", "A31": "20260101130000"}


def adt_message(
    number: int, patients: Sequence[Patient] = (DEFAULT_PATIENT,), event: str = "A28"
) -> bytes:
    """Message `number`: its own control id, the patient `number % len(patients)` (PID-3 PI
    `number % len(patients)`, so each patient has its own local identifier); `event` is A28
    (create a patient) or A31 (update one)."""
    patient = patients[number % len(patients)]
    return TEMPLATE.format(
        at=EVENT_TIMES[event],
        event=event,
        id=f"B{number:09d}",
        pid=f"{number % len(patients):08d}",
        last=patient.birth_name,
        first=patient.first_names[0],
        all_first=" ".join(patient.first_names),
        birth=patient.birth_date,
        sex=patient.sex,
        place=patient.birth_place,
    ).encode("latin-1")
