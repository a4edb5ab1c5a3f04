"""An ADT message (IHE PAM France 2.11) as an FR Core Patient: the pure mapping.

The first PID makes the Patient; PID-32 and the ZFD segment its identity reliability. The
INS goes in only when the outbound guard would let it leave (`engine.fhir.identifiers`) AND
the resource can then meet FR Core Patient INS (official name with the first birth first
name and the full list, gender, birth date, birth place with its INSEE code): otherwise the
resource is a plain FR Core Patient without INS. Ambiguity never adds an INS, it removes one.
The resource has no id: the destination updates it by its local identifier (PID-3 PI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.enrich.identity import read_text
from engine.fhir import profiles
from engine.fhir.dates import fhir_date, fhir_datetime
from engine.fhir.identifiers import guarded_ins, local_identifier, old_ins, pid3_identifiers
from engine.fhir.reliability import reliability_extensions
from engine.hl7.message import Message, Segment, Separators, component
from engine.ins.result import Ins

LEGAL_NAME, USED_NAME, BIRTH_PLACE = "L", "D", "BDL"
GENDERS = {"M": "male", "F": "female", "U": "unknown", "O": "other"}
INS_GENDERS = frozenset({"male", "female", "unknown"})  # fr-core-vs-patient-gender-INS
ADDRESS_USES = {"H": "home", "B": "work", "O": "work", "C": "temp", "BA": "old"}


class NoPatientError(ValueError):
    """The message has no PID: there is no Patient to write."""


@dataclass(frozen=True)
class PatientOptions:
    """What a FHIR destination configures: the local identifiers' system when CX-4 has no
    OID, and whether test and demonstration INS may leave (the route's guard setting)."""

    local_system: str | None = None
    allow_test_oids: bool = False


@dataclass(frozen=True)
class MappedPatient:
    """The Patient (FHIR R4 JSON, no id), its conditional-update key, and whether it holds
    an INS (and so claims fr-core-patient-ins)."""

    resource: dict[str, Any]
    local_identifier: tuple[str, str] | None
    ins: bool

    def __repr__(self) -> str:
        # Identity data: never in a repr that could reach a log line.
        return f"MappedPatient(<redacted>, ins={self.ins})"


@dataclass(frozen=True)
class Previous:
    """What MRG-1 names: the replaced record's local identifier (A40) and the deactivated
    INS (A47), as identifiers of use `old`."""

    local: tuple[str, str] | None
    old_ins: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Previous(<redacted>, old_ins={len(self.old_ins)})"


def map_patient(message: Message, options: PatientOptions) -> MappedPatient:
    """The FR Core Patient of the message's first PID."""
    pid = message.segment("PID")
    if pid is None:
        raise NoPatientError("the message has no PID segment")
    separators = message.separators
    official, usual = _names(pid, separators)
    gender = GENDERS.get(read_text(pid.field(8), separators).upper())
    birth_date = fhir_date(read_text(pid.field(7), separators))
    birth_place, addresses = _addresses(pid, separators)
    ins: Ins | None = guarded_ins(message, pid, options.allow_test_oids)
    if ins is not None and not _meets_ins_profile(official, gender, birth_date, birth_place):
        ins = None
    identifiers, key = pid3_identifiers(pid, ins, options.local_system)
    extensions = reliability_extensions(message, pid)
    if birth_place is not None:
        extensions.append({"url": profiles.BIRTH_PLACE, "valueAddress": birth_place})
    profile = profiles.PATIENT_INS_PROFILE if ins is not None else profiles.PATIENT_PROFILE
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": {"profile": [profiles.pinned(profile)]},
    }
    optional: list[tuple[str, Any]] = [
        ("extension", extensions),
        ("identifier", identifiers),
        ("name", [name for name in (official, usual) if name]),
        ("telecom", _telecoms(pid, separators)),
        ("gender", gender),
        ("birthDate", birth_date),
        *_deceased(pid, separators),
        ("address", addresses),
    ]
    resource.update((key_, value) for key_, value in optional if value not in (None, "", []))
    return MappedPatient(resource, key, ins is not None)


def previous_identifiers(message: Message, options: PatientOptions, qualified: bool) -> Previous:
    """MRG-1's PI and, only for an identity that may carry an INS, its well-formed INS."""
    mrg = message.segment("MRG")
    if mrg is None:
        return Previous(None, [])
    separators = message.separators
    local: tuple[str, str] | None = None
    found: list[dict[str, Any]] = []
    pid = message.segment("PID")
    current = guarded_ins(message, pid, options.allow_test_oids) if pid is not None else None
    for cx in mrg.repetitions(1):
        kind = component(cx, 5, separators.component).strip().upper()
        if kind == profiles.LOCAL_TYPE and local is None:
            identifier = local_identifier(cx, separators, options.local_system)
            local = (identifier["system"], identifier["value"]) if identifier else None
        elif qualified:
            identifier = old_ins(cx, separators, options.allow_test_oids, current)
            if identifier and identifier not in found:
                found.append(identifier)
    return Previous(local, found)


def _meets_ins_profile(
    official: dict[str, Any], gender: str | None, birth_date: str | None, place: Any
) -> bool:
    """What FR Core Patient INS requires beside the identifier: without it, no INS."""
    return (
        official.get("use") == "official"
        and any(e["url"] == profiles.BIRTH_LIST_GIVEN_NAME for e in official.get("extension", []))
        and gender in INS_GENDERS
        and birth_date is not None
        and len(birth_date) == len("YYYY-MM-DD")
        and place is not None
        and "extension" in place
    )


def _names(pid: Segment, separators: Separators) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first legal name (official) and the first used name (usual), {} when absent."""
    official: dict[str, Any] = {}
    usual: dict[str, Any] = {}
    for xpn in pid.repetitions(5):
        kind = component(xpn, 7, separators.component).strip().upper()
        # XPN-1 is an FN: the surname is its first subcomponent.
        family = read_text(
            xpn.split(separators.component)[0].split(separators.subcomponent)[0], separators
        )
        first = read_text(xpn, separators, 2)
        if kind == LEGAL_NAME and not official:
            official = _official(family, first, read_text(xpn, separators, 3))
        elif kind == USED_NAME and not usual and (family or first):
            usual = {"use": "usual", "family": family, "given": [first]}
            usual = {k: v for k, v in usual.items() if v not in ("", [""])}
    return official, usual


def _official(family: str, first: str, first_names: str) -> dict[str, Any]:
    """Birth name, the first birth first name only, the full list unaltered (FR Core
    officialName); the `official` use only when family and given are both there."""
    given = first or (first_names.split()[0] if first_names.split() else "")
    name: dict[str, Any] = {}
    if first_names:
        name["extension"] = [{"url": profiles.BIRTH_LIST_GIVEN_NAME, "valueString": first_names}]
    if family and given:
        name["use"] = "official"
    if family:
        name["family"] = family
    if given:
        name["given"] = [given]
    return name if family or given else {}


def _addresses(
    pid: Segment, separators: Separators
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The birth place (first XAD of type BDL) and the other addresses."""
    birth_place: dict[str, Any] | None = None
    addresses: list[dict[str, Any]] = []
    for xad in pid.repetitions(11):
        kind = component(xad, 7, separators.component).strip().upper()
        address = _address(xad, separators, with_use=kind != BIRTH_PLACE)
        if kind == BIRTH_PLACE:
            birth_place = birth_place or address or None
        elif address and address not in addresses:
            addresses.append(address)
    return birth_place, addresses


def _address(xad: str, separators: Separators, with_use: bool) -> dict[str, Any]:
    def text(number: int) -> str:
        return read_text(xad, separators, number)

    street = read_text(
        component(xad, 1, separators.component).split(separators.subcomponent)[0], separators
    )
    kind = text(7).upper()
    address: dict[str, Any] = {}
    if text(9):
        coding = {"system": profiles.INSEE_CODE_SYSTEM, "code": text(9)}
        address["extension"] = [{"url": profiles.ADDRESS_INSEE_CODE, "valueCoding": coding}]
    if with_use and kind in ADDRESS_USES and any(text(n) for n in range(1, 7)):
        address["use"] = ADDRESS_USES[kind]
    lines = [line for line in (street, text(2)) if line]
    parts = (("line", lines), ("city", text(3)), ("state", text(4)), ("postalCode", text(5)))
    address.update((k, v) for k, v in (*parts, ("country", text(6))) if v)
    return address


def _telecoms(pid: Segment, separators: Separators) -> list[dict[str, Any]]:
    """PID-13 (home) and PID-14 (work) as contact points: e-mail, fax or phone."""
    found: list[dict[str, Any]] = []
    for number, use in ((13, "home"), (14, "work")):
        for xtn in pid.repetitions(number):
            point = _telecom(xtn, separators, use)
            if point and point not in found:
                found.append(point)
    return found


def _telecom(xtn: str, separators: Separators, use: str) -> dict[str, Any]:
    def text(number: int) -> str:
        return read_text(xtn, separators, number)

    equipment = text(3).upper()
    if text(2).upper() == "NET" or equipment in ("INTERNET", "X.400"):
        value, system = text(4), "email"
    else:
        value = text(12) or text(1) or "".join(text(n) for n in (5, 6, 7))
        system = "fax" if equipment == "FX" else "phone"
    if not value:
        return {}
    point = {"system": system, "value": value}
    point["use"] = "mobile" if equipment == "CP" else use
    return point


def _deceased(pid: Segment, separators: Separators) -> list[tuple[str, Any]]:
    """PID-29 (death date and time) or else PID-30 (death indicator Y/N)."""
    when = fhir_datetime(read_text(pid.field(29), separators))
    if when is not None:
        return [("deceasedDateTime", when)]
    indicator = read_text(pid.field(30), separators).upper()
    return [("deceasedBoolean", indicator == "Y")] if indicator in ("Y", "N") else []


__all__ = ["MappedPatient", "PatientOptions", "Previous", "map_patient", "previous_identifiers"]
