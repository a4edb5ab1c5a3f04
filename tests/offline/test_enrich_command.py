"""`ins-engine enrich`: the sample corpus (every layout) enriched offline with the
in-process INSi simulator, checked against hl7_samples/expectations.toml; and the ways a
run refuses to start."""

from __future__ import annotations

import json
import shutil
import stat
import tomllib
from pathlib import Path

import pytest

from engine.cli import main
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.message import Message, component
from engine.tools.replay.files import expand_paths, load_files
from engine.tools.replay.reader import read_messages

SAMPLES = Path(__file__).resolve().parents[2] / "hl7_samples"
EXPECTATIONS = tomllib.loads((SAMPLES / "expectations.toml").read_text("utf-8"))["message"]
PATIENT_DATA = ("ADRTROIS", "VINCI", "HOUILLES", "2970", "8000")


def config_file(tmp_path: Path, route: str = "") -> Path:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "never.db"}"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        f'[[routes]]\nname = "lab"\nlisten = "127.0.0.1:1"\n{route}\n',
        encoding="utf-8",
    )
    return config


def ins_repetitions(payload: bytes) -> list[str]:
    message = Message.parse(decode(payload, CharsetPolicy()).text)
    pid = message.segment("PID")
    assert pid is not None
    separator = message.separators.component
    return [cx for cx in pid.repetitions(3) if component(cx, 5, separator) == "INS"]


def test_corpus_comes_out_as_expected_with_a_report_of_every_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "out", tmp_path / "identities.json"
    args = ["enrich", "--config", str(config_file(tmp_path)), str(SAMPLES), "--out", str(out)]
    assert main([*args, "--report", str(report), "--all", "--format", "json"]) == 0

    rows = {row["control_id"]: row for row in json.loads(report.read_text("utf-8"))}
    assert len(rows) == len(EXPECTATIONS)
    assert [(e["control_id"], rows[e["control_id"]]["outcome"]) for e in EXPECTATIONS] == [
        (e["control_id"], e["outcome"]) for e in EXPECTATIONS
    ]
    inputs, problems = load_files(expand_paths([str(SAMPLES)]))
    assert not problems
    for file in inputs:
        written = out / Path(file.path).name
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        outputs = [raw.payload for raw in read_messages(written.read_bytes()).messages]
        assert len(outputs) == len(file.messages)
        for message, output in zip(file.messages, outputs, strict=True):
            expected = next(e for e in EXPECTATIONS if e["control_id"] == message.control_id)
            if expected.get("pass_through_unchanged"):  # A47/A40 keep the INS they carry
                assert output == message.payload
            else:
                assert ins_repetitions(output) == ([expected["ins"]] if "ins" in expected else [])
    assert not (tmp_path / "never.db").exists()  # no store

    console = capsys.readouterr()
    assert f"{len(EXPECTATIONS)} message(s) in {len(inputs)} file(s)" in console.out
    assert "SIMULATED INSi" in console.out
    assert not any(data in console.out + console.err for data in PATIENT_DATA)


def test_folders_keep_their_relative_paths_and_the_report_lists_what_needs_action(
    tmp_path: Path,
) -> None:
    source = tmp_path / "in"
    (source / "day1").mkdir(parents=True)
    shutil.copy(SAMPLES / "07_a28_vali_several_found.hl7", source / "day1" / "a.hl7")
    shutil.copy(SAMPLES / "01_a28_vali_found_nir.hl7", source / "b.hl7")
    config = config_file(tmp_path)
    report = tmp_path / "report.csv"
    args = ["enrich", "--config", str(config), str(source), "--out", str(tmp_path / "out")]
    assert main([*args, "--report", str(report)]) == 0
    assert (tmp_path / "out" / "day1" / "a.hl7").is_file()
    assert (tmp_path / "out" / "b.hl7").is_file()
    lines = report.read_text("utf-8-sig").splitlines()
    assert len(lines) == 2 and ",several_found,02," in lines[1]  # header + the 02
    assert stat.S_IMODE(report.stat().st_mode) == 0o600

    assert main(args) == 2  # outputs exist: refused before any INSi call
    assert main([*args, "--force"]) == 0


def test_an_unreadable_file_stops_the_run_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(SAMPLES / "01_a28_vali_found_nir.hl7", source / "good.hl7")
    (source / "bad.hl7").write_bytes(b"PID|1||X\rMSH|^~\\&|A|B|C|D|2024||ADT^A28|C1|P|2.5\r")
    out = tmp_path / "out"
    config = str(config_file(tmp_path))
    assert main(["enrich", "--config", config, str(source), "--out", str(out)]) == 1
    assert "bad.hl7: line 1: segment outside any message" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("route", "extra", "error"),
    [
        ("", ["--route", "nope"], "--route nope: no such route (routes: adt, lab)"),
        ("enrich = false", ["--route", "lab"], "route lab has no ins_enrich step"),
        ("", ["--out", "."], "would replace its own input"),
    ],
)
def test_bad_usage_is_refused_with_a_clear_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    extra: list[str],
    error: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(SAMPLES / "01_a28_vali_found_nir.hl7", tmp_path / "in.hl7")
    config = str(config_file(tmp_path, route))
    assert main(["enrich", "--config", config, "in.hl7", "--out", "out", *extra]) == 2
    assert error in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_shipped_routes_enrich_through_pas_ehr_and_leave_out_what_it_drops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = Path(__file__).resolve().parents[2] / "routes"
    source = tmp_path / "in"
    source.mkdir()
    for case in ("added", "training_dropped"):
        shutil.copy(routes / "tests" / "pas-ehr" / case / "in.hl7", source / f"{case}.hl7")
    out = tmp_path / "out"
    assert (
        main(["enrich", "--config", str(routes / "default.toml"), str(source), "--out", str(out)])
        == 0
    )
    console = capsys.readouterr().out
    assert "(route pas-ehr)" in console  # the first route with an ins_enrich step
    assert "1 message(s) dropped or refused by the route, not written" in console
    assert (out / "training_dropped.hl7").read_bytes() == b""
    expected = (routes / "tests" / "pas-ehr" / "added" / "out.ehr.hl7").read_bytes().split(b"\n")
    written = (out / "added.hl7").read_bytes().split(b"\r")
    assert [s for s in written if not s.startswith(b"ZFD")] == [
        s
        for s in expected
        if not s.startswith(b"ZFD")  # ZFD-6: the call time, not fixed here
    ]
