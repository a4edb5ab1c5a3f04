"""`ins-engine test`: the shipped routes' cases pass; a failing case names itself, the
destination and the field; a broken case says what to fix; exit statuses."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main

ROUTES = Path(__file__).resolve().parent.parent / "routes"
ENGINE = """
[[routes]]
name = "adt"
listen = "127.0.0.1:0"

[[routes.steps]]
kind = "ins_enrich"
name = "ins"

[[routes.destinations]]
name = "ehr"
file = "out"
accept = ["ADT^A28"]

[[routes.destinations]]
name = "archive"
file = "out"
"""


def test_the_shipped_routes_pass_their_tests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--config", str(ROUTES / "default.toml")]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    shown = ("pas-ehr/added", "pas-ehr/several_found", "lab-results/preliminary_dropped")
    for case in (*shown, "pas-warehouse/qualified_ins", "pas-warehouse/merge"):
        assert f"ok   {case}" in out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A configuration with one case copied from the shipped added case."""
    (tmp_path / "engine.toml").write_text(ENGINE, encoding="utf-8")
    case = tmp_path / "tests" / "adt" / "added"
    shutil.copytree(ROUTES / "tests" / "pas-ehr" / "added", case)
    return tmp_path


def run(project: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["test", "--config", str(project / "engine.toml")])
    return status, [line.strip() for line in capsys.readouterr().out.splitlines()]


def test_a_copied_case_passes_and_the_clock_is_the_case_s(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = project / "tests" / "adt" / "added"
    assert run(project, capsys)[0] == 0
    (case / "case.toml").write_text("now = 2030-06-01T08:00:00+02:00\n", encoding="utf-8")
    status, lines = run(project, capsys)
    assert status == 1
    assert lines[0] == "FAIL adt/added"
    assert 'ehr: ZFD-6: expected "20250101120000+0000", got "20300601060000+0000"' in lines
    assert 'archive: ZFD-6: expected "20250101120000+0000", got "20300601060000+0000"' in lines


def test_failures_name_the_destination_the_field_the_answer_and_the_decision(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = project / "tests" / "adt" / "added"
    (case / "out.ehr.hl7").write_bytes((case / "out.ehr.hl7").read_bytes().replace(b"|F|", b"|M|"))
    (case / "out.archive.hl7").unlink()
    (case / "case.toml").write_text('ack = "AE"\ndecisions = ["ins verified"]\n', encoding="utf-8")
    status, lines = run(project, capsys)
    assert status == 1
    assert lines == [
        "FAIL adt/added",
        "ack: expected AE, got AA",
        'ehr: PID-8: expected "M", got "F"',
        "archive: expected nothing, received a message",
        "decisions: expected 'ins verified', got 'ins added'",
        "1 case(s): 0 passed, 1 failed",
    ]


CANNED_INS = '[steps.ins]\noutcome = "verified"\ndetail = "canned"\n'
# INSi down: the canned step needs no INSi.
INSI_DOWN = "[insi]\nsimulator_fault_rate = 1.0\nretries = 0\n"


def test_a_step_replaced_by_a_canned_result_is_not_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = project / "tests" / "adt" / "added"
    for destination in ("ehr", "archive"):  # a canned step leaves the message as it is
        shutil.copy(case / "in.hl7", case / f"out.{destination}.hl7")
    (case / "case.toml").write_text(
        f'decisions = ["ins verified canned"]\n{INSI_DOWN}{CANNED_INS}', encoding="utf-8"
    )
    assert run(project, capsys) == (0, ["ok   adt/added", "1 case(s): 1 passed, 0 failed"])
    (case / "case.toml").write_text('decisions = ["ins verified canned"]\n')
    status, lines = run(project, capsys)  # the real step, INSi up: it adds the INS
    assert status == 1
    assert "decisions: expected 'ins verified canned', got 'ins added'" in lines


def test_a_canned_step_can_drop_the_message(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = project / "tests" / "adt" / "added"
    for destination in ("ehr", "archive"):
        (case / f"out.{destination}.hl7").unlink()
    (case / "case.toml").write_text(
        'decisions = ["ins skipped"]\n[steps.ins]\noutcome = "skipped"\naction = "drop"\n',
        encoding="utf-8",
    )
    assert run(project, capsys) == (0, ["ok   adt/added", "1 case(s): 1 passed, 0 failed"])


def test_a_step_before_the_ack_can_be_canned_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROUTES, tmp_path / "routes")
    case = tmp_path / "routes" / "tests" / "lab-results" / "other_sender_refused"
    (case / "case.toml").write_text(
        'decisions = ["lab-only kept canned"]\n'
        '[steps.lab-only]\noutcome = "kept"\ndetail = "canned"\n',
        encoding="utf-8",
    )
    status = main(
        ["test", "--config", str(tmp_path / "routes" / "default.toml"), "lab-results/other*"]
    )
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    # Acknowledged AA, as the case expects by default: the sender filter did not refuse it.
    assert (status, lines) == (
        1,
        [
            "FAIL lab-results/other_sender_refused",
            "ehr: expected nothing, received a message",
            "1 case(s): 0 passed, 1 failed",
        ],
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda case: (case / "in.hl7").unlink(), "in.hl7: missing"),
        (lambda case: (case / "out.lab.hl7").write_text("x"), "has no destination lab"),
        (lambda case: (case / "case.toml").write_text("colour = 1\n"), "colour: unknown key"),
        (
            lambda case: (case / "case.toml").write_text('[steps.nope]\noutcome = "x"\n'),
            "steps: no step nope in route adt (steps: ins)",
        ),
        (
            lambda case: (case / "case.toml").write_text(CANNED_INS + 'action = "hold"\n'),
            "steps.ins.action: continue or drop",
        ),
        (
            lambda case: (case / "case.toml").write_text("[steps.ins]\n"),
            "steps.ins.outcome: a value (this key is required)",
        ),
        (
            lambda case: (case / "case.toml").write_text(
                '[insi]\nurl = "http://127.0.0.1:8089/lps"\n'
            ),
            "insi.url: none: route tests run on the in-process simulator",
        ),
        (
            lambda case: case.rename(case.parent.parent / "nope" / "added"),
            "no route nope (routes: adt)",
        ),
    ],
)
def test_a_broken_case_says_what_to_fix(
    project: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Path], object], reason: str
) -> None:
    case = project / "tests" / "adt" / "added"
    (project / "tests" / "nope").mkdir()
    change(case)
    status, lines = run(project, capsys)
    assert status == 1
    assert any(reason in line for line in lines), lines


def test_nothing_to_test_and_a_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "engine.toml").write_text(ENGINE, encoding="utf-8")
    assert main(["test", "--config", str(tmp_path / "engine.toml")]) == 1
    assert "nothing was tested" in capsys.readouterr().out
    (tmp_path / "engine.toml").write_text(ENGINE + "colour = 1\n", encoding="utf-8")
    assert main(["test", "--config", str(tmp_path / "engine.toml")]) == 2


INS_SYSTEMS = ("urn:oid:1.2.250.1.213.1.4.8", "urn:oid:1.2.250.1.213.1.4.9")
SURVIVOR = "PUT Patient?identifier=urn:oid:1.2.250.1.999.1.1%7C800019"


def test_a_fhir_destination_s_writes_differ_field_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped warehouse cases, broken three ways: a value, a write too few, a case
    expecting nothing; and an HL7 out file for a fhir destination."""
    shutil.copytree(ROUTES, tmp_path / "routes")
    cases = tmp_path / "routes" / "tests" / "pas-warehouse"
    qualified = cases / "qualified_ins" / "out.eds.json"
    writes = json.loads(qualified.read_text("utf-8"))
    writes[0]["resource"]["identifier"][1]["system"] = "urn:oid:1.2.250.1.213.1.4.9"
    qualified.write_text(json.dumps(writes), encoding="utf-8")
    merge = cases / "merge" / "out.eds.json"
    merge.write_text(json.dumps(json.loads(merge.read_text("utf-8"))[:1]), encoding="utf-8")
    (cases / "not_qualified" / "out.eds.json").unlink()
    status = main(
        ["test", "--config", str(tmp_path / "routes" / "default.toml"), "pas-warehouse/*"]
    )
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert status == 1
    assert lines[0].startswith("FAIL pas-warehouse/merge")
    assert lines[1:2] == ["eds: expected 1 writes, got 2"]
    assert lines[2].startswith("FAIL pas-warehouse/not_qualified")
    assert lines[3:4] == ["eds: expected nothing, got 1 write(s)"]
    assert lines[4].startswith("FAIL pas-warehouse/qualified_ins")
    assert lines[5:] == [
        "eds: PUT Patient?identifier=urn:oid:1.2.250.1.999.1.1%7C800001: "
        'identifier[1].system: expected "urn:oid:1.2.250.1.213.1.4.9", '
        'got "urn:oid:1.2.250.1.213.1.4.8"',
        "3 case(s): 0 passed, 3 failed",
    ]

    merge.rename(merge.with_suffix(".hl7"))
    assert main(["test", "--config", str(tmp_path / "routes" / "default.toml"), "*/merge"]) == 1
    assert "destination eds expects out.eds.json" in capsys.readouterr().out


def expected_writes(case: str) -> list[dict[str, Any]]:
    path = ROUTES / "tests" / "pas-warehouse" / case / "out.eds.json"
    writes: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
    return writes


@pytest.mark.parametrize(("case", "ins"), [("qualified_ins", True), ("not_qualified", False)])
def test_only_a_qualified_identity_reaches_the_warehouse_with_its_ins(case: str, ins: bool) -> None:
    (write,) = expected_writes(case)
    resource = write["resource"]
    systems = [identifier["system"] for identifier in resource["identifier"]]
    assert any(system in INS_SYSTEMS for system in systems) is ins
    (profile,) = resource["meta"]["profile"]
    assert profile.split("|")[0].endswith("fr-core-patient-ins" if ins else "fr-core-patient")


def test_a_merge_writes_the_survivor_then_the_absorbed_record_replaced_by_it() -> None:
    survivor, absorbed = expected_writes("merge")
    assert f"{survivor['method']} {survivor['url']}" == SURVIVOR
    assert survivor["resource"]["id"] == "1" and "active" not in survivor["resource"]
    assert absorbed["url"].endswith("%7C800119")
    assert absorbed["resource"]["active"] is False
    assert absorbed["resource"]["link"] == [
        {"other": {"reference": "Patient/1"}, "type": "replaced-by"}
    ]
