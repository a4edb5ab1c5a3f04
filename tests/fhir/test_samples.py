"""The sample messages as FR Core Patients: exact JSON for the cases that teach the most.

01 a VALI identity before enrichment (no INS yet: plain FR Core Patient); 13 and 14 a
fictive and a doubtful identity (provisional, the attribute beside it, no INS); 18 an A47
(the new INS in PID-3, the old one in MRG-1 as use `old`); 19 an A40 (MRG-1 the absorbed
record's PI). `UPDATE_EXPECTED=1` rewrites the files after a deliberate change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.fhir.patient import PatientOptions, map_patient, previous_identifiers
from engine.fhir.validation import problems
from engine.hl7.message import Message

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "hl7_samples"
EXPECTED = Path(__file__).resolve().parent / "expected"
LOCAL = ("urn:oid:1.2.250.1.999.1.1",)


def message(name: str) -> Message:
    path = next(SAMPLES.glob(f"{name}_*.hl7"))
    return Message.parse(path.read_text(encoding="latin-1"))


@pytest.mark.parametrize("name", ["01", "13", "14", "18", "19"])
def test_the_sample_maps_to_the_expected_patient(name: str) -> None:
    sample = message(name)
    mapped = map_patient(sample, PatientOptions())
    previous = previous_identifiers(sample, PatientOptions(), qualified=mapped.ins)
    got = {
        "resource": mapped.resource,
        "local_identifier": list(mapped.local_identifier or ()),
        "ins": mapped.ins,
        "previous": {"local": list(previous.local or ()), "old_ins": previous.old_ins},
    }
    expected = EXPECTED / f"{name}.json"
    if os.environ.get("UPDATE_EXPECTED"):
        expected.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", "utf-8")
    assert got == json.loads(expected.read_text("utf-8"))
    assert list(mapped.resource) == list(json.loads(expected.read_text("utf-8"))["resource"])
    assert problems(mapped.resource) == []


def test_every_sample_maps_to_a_valid_patient() -> None:
    for path in sorted(SAMPLES.glob("*.hl7")):
        text = path.read_text(encoding="latin-1")
        if text.count("MSH|") != 1:
            continue  # batches and captures hold several messages
        sample = Message.parse(text)
        if sample.segment("PID") is None:
            continue
        mapped = map_patient(sample, PatientOptions())
        assert problems(mapped.resource) == [], path.name


def test_the_a47_old_ins_joins_the_new_one_and_stays_valid() -> None:
    sample = message("18")
    mapped = map_patient(sample, PatientOptions())
    previous = previous_identifiers(sample, PatientOptions(), qualified=True)
    assert mapped.ins and [i["use"] for i in previous.old_ins] == ["old"]
    resource = {**mapped.resource, "identifier": mapped.resource["identifier"] + previous.old_ins}
    assert problems(resource) == []


def test_no_old_ins_for_an_identity_that_may_not_carry_one() -> None:
    assert previous_identifiers(message("18"), PatientOptions(), qualified=False).old_ins == []


def test_a_local_identifier_without_oid_takes_the_configured_system() -> None:
    text = (SAMPLES / next(p.name for p in SAMPLES.glob("19_*.hl7"))).read_text("latin-1")
    sample = Message.parse(text.replace("CHU_DEMO&1.2.250.1.999.1.1&ISO^PI", "CHU_DEMO^PI"))
    assert map_patient(sample, PatientOptions()).local_identifier is None
    mapped = map_patient(sample, PatientOptions(local_system="urn:oid:1.2.3.4"))
    assert mapped.local_identifier == ("urn:oid:1.2.3.4", "800019")
    previous = previous_identifiers(sample, PatientOptions(local_system="urn:oid:1.2.3.4"), False)
    assert previous.local == ("urn:oid:1.2.3.4", "800119")


def test_escape_sequences_are_unescaped_and_reprs_hold_no_identity() -> None:
    mapped = map_patient(message("24"), PatientOptions())
    lines = mapped.resource["address"][0]["line"]
    assert "\\" not in "".join(lines[:1]) and "&" in lines[0]
    assert "800024" not in repr(mapped) and "ADRTROIS" not in repr(mapped)
