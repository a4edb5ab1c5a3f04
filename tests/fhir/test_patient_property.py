"""The FHIR mapping's safety rules, over generated PIDs.

PIDs mix statuses and attributes (in any case, with several statuses), INS repetitions with
every OID (the billing NIR `NH` with the INS-NIR's OID too), bad keys, several INS, test and
demonstration OIDs with and without the route's `allow_test_oids`, lunar and corrected birth
dates, missing traits. Then:

(a) an INS identifier appears only when the outbound guard's rules (`judge`) would let that
    very INS leave, the identity says exactly VALI and no FICT/DOUT, and a test OID is allowed;
(b) the billing NIR is never an INS: every INS identifier's value is a PID-3 repetition that
    is no `NH`;
(c) every mapped Patient, with MRG-1's old INS added, passes `problems()`;
(d) `problems()` catches a mapped Patient broken by hand.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.enrich.carried import carried_ins
from engine.enrich.guard_rules import MessageFacts, judge
from engine.enrich.identity import source_flags
from engine.fhir import profiles
from engine.fhir.patient import PatientOptions, map_patient, previous_identifiers
from engine.fhir.validation import problems
from engine.hl7.message import Message
from tests.fhir.generated import INS_SYSTEMS, OID, PERSONS, SETTINGS, messages


def ins_identifiers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        i
        for i in resource.get("identifier", [])
        if i["system"] in INS_SYSTEMS and i["type"]["coding"][0]["code"] != "NH"
    ]


@SETTINGS
@given(messages())
def test_an_ins_appears_only_where_the_guard_lets_it_leave(case: Any) -> None:
    message, options = case
    pid = message.segment("PID")
    assert pid is not None
    mapped = map_patient(message, options)
    found = ins_identifiers(mapped.resource)
    assert mapped.ins == bool(found)
    if not found:
        return
    assert len(found) == 1
    (identifier,) = found
    # The guard's own verdict (production as the message says, the route's setting)...
    processing = message.msh.field(11)
    facts = MessageFacts(processing in ("", "P"), source_flags(message))
    verdict = judge(pid, facts, options.allow_test_oids)
    if verdict is None:
        (carried,) = carried_ins(pid)
        kept = (carried.canonical_matricule, carried.oid_text.strip())
    else:
        assert verdict.keep is not None
        kept = (str(verdict.keep.matricule), verdict.keep.oid.value)
    assert (identifier["value"], identifier["system"]) == (kept[0], f"urn:oid:{kept[1]}")
    # ...and what an oracle reads directly from the message.
    assert pid.field(32).split("~")[0] == "VALI"
    assert not {"FICT", "DOUT"} & set(pid.field(32).upper().split("~"))
    assert options.allow_test_oids or not kept[1].endswith((".10", ".11"))
    assert mapped.resource["meta"]["profile"] == [
        f"{profiles.PATIENT_INS_PROFILE}|{profiles.FR_CORE_VERSION}"
    ]


@SETTINGS
@given(messages())
def test_the_billing_nir_is_never_an_ins(case: Any) -> None:
    message, options = case
    pid = message.segment("PID")
    assert pid is not None
    not_billing = {cx.split("^")[0] for cx in pid.repetitions(3) if cx.split("^")[4:5] != ["NH"]}
    for identifier in ins_identifiers(map_patient(message, options).resource):
        assert identifier["value"] in not_billing
        assert identifier["type"]["coding"][0]["system"] == profiles.FR_V2_0203


@SETTINGS
@given(messages())
def test_every_mapped_patient_passes_the_checks(case: Any) -> None:
    message, options = case
    mapped = map_patient(message, options)
    previous = previous_identifiers(message, options, qualified=mapped.ins)
    assert mapped.ins or not previous.old_ins
    resource = copy.deepcopy(mapped.resource)
    if previous.old_ins:
        resource["identifier"] = [*resource.get("identifier", []), *previous.old_ins]
    assert problems(resource) == []


def _reliability(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in resource["extension"] if e["url"] == profiles.IDENTITY_RELIABILITY]


def _coded(code: str) -> dict[str, Any]:
    status = {"system": profiles.FR_V2_0445, "code": code}
    return {
        "url": profiles.IDENTITY_RELIABILITY,
        "extension": [{"url": "identityStatus", "valueCoding": status}],
    }


def _break(resource: dict[str, Any], how: str) -> None:
    ins = ins_identifiers(resource)[0]
    if how == "second official INS":
        resource["identifier"].append({**ins, "value": PERSONS[0][4]})
    elif how == "INS without VALI":
        status = _reliability(resource)[0]["extension"]
        for sub in status:
            if sub["url"] == "identityStatus":
                sub["valueCoding"]["code"] = "PROV"
    elif how == "FICT and DOUT":
        resource["extension"] += [_coded("FICT"), _coded("DOUT")]
    elif how == "DOUT on a VALI identity":
        resource["extension"].append(_coded("DOUT"))
    elif how == "no birth place":
        resource["extension"] = _reliability(resource)
    elif how == "two given names":
        resource["name"][0]["given"].append("SECOND")
    elif how == "no INS profile claimed":
        resource["meta"]["profile"] = [f"{profiles.PATIENT_PROFILE}|{profiles.FR_CORE_VERSION}"]
    elif how == "NIA used as official":
        resource["identifier"].remove(ins)
        nia = {"coding": [{"system": profiles.FR_V2_0203, "code": "INS-NIA"}]}
        resource["identifier"].append(
            {**ins, "use": "official", "type": nia, "system": f"urn:oid:{OID}9"}
        )
    elif how == "no INS at all":
        resource["identifier"].remove(ins)
    elif how == "bad birth date":
        resource["birthDate"] = "1975-02-30"


BREAKS = [
    "second official INS",
    "INS without VALI",
    "FICT and DOUT",
    "DOUT on a VALI identity",
    "no birth place",
    "two given names",
    "no INS profile claimed",
    "NIA used as official",
    "no INS at all",
    "bad birth date",
]


@SETTINGS
@given(st.sampled_from(PERSONS), st.sampled_from(BREAKS))
def test_the_checks_catch_a_patient_broken_by_hand(person: tuple[str, ...], how: str) -> None:
    pid = (
        f"PID|||1^^^CHU&1.2.250.1.999.1.1&ISO^PI~{person[4]}^^^"
        f"{'ASIP-SANTE-INS-NIA' if person[5] == '9' else 'ASIP-SANTE-INS-NIR'}"
        f"&{OID}{person[5]}&ISO^INS||{person[0]}||{person[1]}|{person[2]}|||"
        f"^^^^^FRA^BDL^^{person[3]}" + "|" * 21 + "VALI"
    )
    message = Message.parse(f"MSH|^~\\&|A|B|C|D|1||ADT^A28^ADT_A05|1|P|2.5\r{pid}")
    mapped = map_patient(message, PatientOptions())
    assert mapped.ins and problems(mapped.resource) == []
    broken = copy.deepcopy(mapped.resource)
    _break(broken, how)
    found = problems(broken)
    assert found, how
    for problem in found:  # element and rule, never a value
        assert person[4] not in problem and person[0].split("^")[0] not in problem
