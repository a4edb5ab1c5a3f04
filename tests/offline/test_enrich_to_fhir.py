"""`ins-engine enrich --to-fhir`: the sample corpus through the shipped warehouse route as
NDJSON Patients, run as a command; and the ways it refuses a route or a destination."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.fhir.validation import problems
from engine.tools.replay.files import expand_paths, load_files

REPOSITORY = Path(__file__).resolve().parents[2]
SAMPLES = REPOSITORY / "hl7_samples"
EXPECTATIONS = {
    message["control_id"]: message
    for message in tomllib.loads((SAMPLES / "expectations.toml").read_text("utf-8"))["message"]
}
# What the eds destination of routes/pas-warehouse.route.toml takes, and the writes of each.
WRITES = {"A28": 1, "A31": 1, "A01": 1, "A04": 1, "A05": 1, "A47": 1, "A40": 2}
INS_SYSTEMS = ("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.9")
PATIENT_DATA = ("ADRTROIS", "VINCI", "HOUILLES", "297022A02077878", "800001")
SOURCE_EVENT = "urn:ins-engine:fhir:source-event"


def control_id(resource: dict[str, Any]) -> str:
    """The message a resource was written from, as the feed stamps it."""
    (stamp,) = [e for e in resource["extension"] if e["url"] == SOURCE_EVENT]
    (message,) = [part for part in stamp["extension"] if part["url"] == "message"]
    value: str = message["valueString"]
    return value


def test_the_samples_become_checked_patients_one_line_per_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "engine", "enrich", "--config", "routes/default.toml"]
    done = subprocess.run(
        [*command, str(SAMPLES), "--out", str(out), "--to-fhir=eds"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    inputs, unreadable = load_files(expand_paths([str(SAMPLES)]))
    assert not unreadable
    taken = lines = 0
    for file in inputs:
        written = out / Path(file.path).with_suffix(".ndjson").name
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        resources = [json.loads(line) for line in written.read_text("utf-8").splitlines()]
        writes = [
            (m.control_id, WRITES.get(m.message_type.split("^")[1], 0)) for m in file.messages
        ]
        assert [control_id(resource) for resource in resources] == [
            control for control, count in writes for _ in range(count)
        ], file.path
        for resource in resources:
            assert resource["resourceType"] == "Patient"
            assert problems(resource) == []
            expected = EXPECTATIONS[control_id(resource)]
            ins = [i["value"] for i in resource["identifier"] if i["system"] in INS_SYSTEMS]
            if "ins" in expected:  # a qualified identity with its INS
                assert ins == [expected["ins"].split("^")[0]]
            elif not expected.get("pass_through_unchanged"):  # A40, A47: the INS they carry
                assert ins == []  # no INS without a qualified identity
        taken += sum(count > 0 for _, count in writes)
        lines += len(resources)
    assert f"eds: {taken} message(s) taken, {lines} resource(s) written" in done.stdout
    assert "(route pas-warehouse, destination eds, NDJSON)" in done.stdout
    assert not any(data in done.stdout + done.stderr for data in PATIENT_DATA)


ROUTES = """
[engine]
store = "sqlite:///never.db"

[[routes]]
name = "adt"
listen = "127.0.0.1:0"
[[routes.destinations]]
name = "archive"
file = "archive"

[[routes]]
name = "eds"
listen = "127.0.0.1:1"
enrich = false
[[routes.destinations]]
name = "one"
fhir = { base_url = "http://127.0.0.1:1/fhir" }
[[routes.destinations]]
name = "two"
fhir = { base_url = "http://127.0.0.1:1/fhir" }
"""


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["in.hl7", "--route", "adt", "--to-fhir"], "--to-fhir: route adt has no fhir destination"),
        (["in.hl7", "--to-fhir"], "--to-fhir: route eds has several fhir destinations (one, two)"),
        (["in.hl7", "--to-fhir=three"], "--to-fhir: no route has a fhir destination three"),
        (["--to-fhir", "in.hl7", "in.hl7"], "in.hl7 is a path: put --to-fhir after the paths"),
    ],
)
def test_a_route_or_destination_that_cannot_be_fed_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    error: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "engine.toml").write_text(ROUTES, encoding="utf-8")
    shutil.copy(SAMPLES / "01_a28_vali_found_nir.hl7", tmp_path / "in.hl7")
    assert main(["enrich", "--config", "engine.toml", "--out", "out", *extra]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "never.db").exists()


def test_a_route_without_enrichment_is_fed_and_its_ins_left_to_the_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Route eds has no ins_enrich step: the sample's PID has no INS, so neither has the
    Patient; the destination named, the output is in.ndjson."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "engine.toml").write_text(ROUTES, encoding="utf-8")
    shutil.copy(SAMPLES / "01_a28_vali_found_nir.hl7", tmp_path / "in.hl7")
    assert (
        main(["enrich", "--config", "engine.toml", "in.hl7", "--out", "out", "--to-fhir", "two"])
        == 0
    )
    (line,) = (tmp_path / "out" / "in.ndjson").read_text("utf-8").splitlines()
    resource = json.loads(line)
    assert [i["system"] for i in resource["identifier"] if i["system"] in INS_SYSTEMS] == []
    assert "(route eds, destination two, NDJSON)" in capsys.readouterr().out


def test_a_message_the_destination_would_park_is_named_not_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "engine.toml").write_text(ROUTES, encoding="utf-8")
    sample = (SAMPLES / "01_a28_vali_found_nir.hl7").read_bytes()
    (tmp_path / "in.hl7").write_bytes(sample.replace(b"&ISO^PI", b"&ISO^XX"))  # no local id
    assert (
        main(["enrich", "--config", "engine.toml", "in.hl7", "--out", "out", "--to-fhir=one"]) == 1
    )
    console = capsys.readouterr()
    assert "in.hl7: message 1: PID-3 has no local identifier" in console.err
    assert "1 message(s) the destination would park, not written" in console.out
    assert (tmp_path / "out" / "in.ndjson").read_bytes() == b""
    assert not any(data in console.out + console.err for data in PATIENT_DATA)
