"""Which identifiers of PID-3 and MRG-1 a Patient carries, and the one rule for its INS.

The INS is decided by the outbound guard's own rules (`engine.enrich.guard_rules.judge`):
an INS leaves for FHIR only where it would leave the engine in an HL7 message. Two things
are stricter here, never looser: a test or demonstration OID only when the route allows
them (whatever MSH-11 says), and an old INS (MRG-1) only for an identity that may carry
one. The billing NIR shares the INS-NIR's OID and is told apart by its type, never its OID.
"""

from __future__ import annotations

import re
from typing import Any

from engine.enrich.carried import (
    canonical_repetition,
    carried_ins,
    is_billing_nir,
    is_ins_c,
    looks_like_ins,
)
from engine.enrich.guard_rules import PRODUCTION, MessageFacts, judge
from engine.enrich.identity import read_text, source_flags
from engine.fhir import profiles
from engine.hl7.escape import unescape
from engine.hl7.message import Message, Segment, Separators, component
from engine.ins.errors import MatriculeError
from engine.ins.matricule import Matricule
from engine.ins.oids import InsOid, parse_oid
from engine.ins.result import Ins

_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")
_INS_ROOT = profiles.oid_system("1.2.250.1.213.1.4.")  # the INS and INS-C OIDs' root
_TEST_OIDS = frozenset({InsOid.TEST_NIR, InsOid.DEMO_NIR})


def guarded_ins(message: Message, pid: Segment, allow_test_oids: bool) -> Ins | None:
    """The INS this PID may carry out of the engine, or None (ambiguous is None)."""
    processing = component(message.msh.field(11), 1, message.separators.component)
    facts = MessageFacts(processing.strip().upper() in ("", PRODUCTION), source_flags(message))
    verdict = judge(pid, facts, allow_test_oids)
    if verdict is not None:
        ins = verdict.keep
    else:  # the PID leaves unchanged: no INS, or exactly one, well formed
        carried = carried_ins(pid)
        if len(carried) != 1:
            return None
        ins = _parse(carried[0].matricule, carried[0].oid_text)
    if ins is None or (ins.oid in _TEST_OIDS and not allow_test_oids):
        return None
    return ins


def _parse(matricule: str, oid_text: str) -> Ins | None:
    oid = parse_oid(oid_text)
    try:
        return Ins(Matricule.parse(matricule), oid) if oid is not None else None
    except MatriculeError:
        return None


def ins_identifier(ins: Ins, use: str | None = None) -> dict[str, Any]:
    """The INS slice of its OID (FRCorePatientINSProfile.fsh): type, system, fixed use."""
    return {
        "use": use or profiles.INS_USES[ins.oid],
        "type": _type(profiles.FR_V2_0203, profiles.INS_TYPES[ins.oid]),
        "system": profiles.oid_system(ins.oid.value),
        "value": str(ins.matricule),
    }


def local_system(cx: str, separators: Separators, configured: str | None) -> str | None:
    """`urn:oid:` + CX-4.2 when it is an OID, else the destination's configured system."""
    authority = component(cx, 4, separators.component).split(separators.subcomponent)
    oid = unescape(authority[1], separators).strip() if len(authority) > 1 else ""
    return profiles.oid_system(oid) if _OID.fullmatch(oid) else configured


def local_identifier(cx: str, separators: Separators, configured: str | None) -> dict[str, Any]:
    """A PI repetition as FR Core's PI slice, or {} without a value or a system, or when it
    looks like an INS (an INS OID or namespace under type PI is no local identifier)."""
    value = read_text(cx, separators)
    system = local_system(cx, separators, configured)
    if not value or system is None or looks_like_ins(cx, separators):
        return {}
    if system in profiles.INS_SYSTEMS or system.startswith(_INS_ROOT):
        return {}
    return pi_identifier(system, value)


def pi_identifier(system: str, value: str, use: str = "usual") -> dict[str, Any]:
    """FR Core's PI slice for a local identifier (`use = old` for one that was replaced)."""
    return {
        "use": use,
        "type": _type(profiles.V2_0203, profiles.LOCAL_TYPE),
        "system": system,
        "value": value,
    }


def billing_nir(cx: str, separators: Separators) -> dict[str, Any]:
    """The billing NIR as FR Core's NSS slice (`NH`, the INS-NIR's OID), or {}."""
    value = read_text(cx, separators)
    if not value or not is_billing_nir(cx, separators):
        return {}
    return {
        "use": "official",
        "type": _type(profiles.V2_0203, profiles.BILLING_NIR_TYPE),
        "system": profiles.BILLING_NIR_SYSTEM,
        "value": value,
    }


def pid3_identifiers(
    pid: Segment, ins: Ins | None, configured: str | None
) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
    """PID-3 as identifiers (PI, NSS, then the INS the guard lets go) and the first PI's
    (system, value): the key a FHIR server updates the Patient by."""
    separators = pid.separators
    found: list[dict[str, Any]] = []
    key: tuple[str, str] | None = None
    for cx in pid.repetitions(3):
        kind = component(cx, 5, separators.component).strip().upper()
        if kind == profiles.LOCAL_TYPE:
            identifier = local_identifier(cx, separators, configured)
            if identifier and key is None:
                key = (identifier["system"], identifier["value"])
        elif kind == profiles.BILLING_NIR_TYPE:
            identifier = billing_nir(cx, separators)
        else:
            continue
        if identifier and identifier not in found:
            found.append(identifier)
    if ins is not None:
        found.append(ins_identifier(ins))
    return found, key


def old_ins(
    cx: str, separators: Separators, allow_test_oids: bool, current: Ins | None
) -> dict[str, Any]:
    """An INS repetition of MRG-1 as an identifier of use `old`, or {} unless well formed
    as the guard wants an INS written (key, known OID, canonical form), test OIDs only when
    allowed, and not the current INS."""
    if not looks_like_ins(cx, separators) or is_ins_c(cx, separators):
        return {}
    matricule = unescape(component(cx, 1, separators.component), separators)
    authority = component(cx, 4, separators.component).split(separators.subcomponent)
    oid_text = unescape(authority[1], separators) if len(authority) > 1 else ""
    ins = _parse(matricule, oid_text)
    if ins is None or cx != canonical_repetition(ins, separators):
        return {}
    if ins.oid in _TEST_OIDS and not allow_test_oids:
        return {}
    if current is not None and (ins.matricule, ins.oid) == (current.matricule, current.oid):
        return {}
    return ins_identifier(ins, profiles.OLD_USE)


def _type(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}
