"""The identity report: rows from stored outcomes (real SQLite file), the 0600 file, CSV and
JSON, paging, and the filters the vigilance team relies on."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.enrich.outcome import NEEDS_ACTION, IdentityOutcome, Outcome, ReceivedIns
from engine.enrich.store import IdentityRecord, IdentityTables, identity_records
from engine.errors import CliError
from engine.ins.matricule import Matricule
from engine.ins.oids import InsOid
from engine.ins.result import Ins
from engine.ins.traits import IdentityTraits
from engine.store.base import Incoming, RoutingResult
from engine.store.decision import Decision
from engine.store.sqlite import SqliteStore
from engine.tools.report import COLUMNS, ReportFile, report_row, write_store_report

TOUSSAINT = IdentityTraits("ADRTROIS", ("TOUSSAINT",), "M", dt.date(1960, 1, 1), "2B020")
TOUSSAINT_INS = Ins(Matricule.parse("160012B02077713"), InsOid.NIR)
T0 = 1_700_000_000.0


def outcome_record(outcome: Outcome, control_id: str, **fields: object) -> dict[str, object]:
    return IdentityOutcome(outcome, "A28", control_id, **fields).to_record()  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(str(tmp_path / "engine.db"), [IdentityTables()])
    yield store
    await store.close()


async def store_outcome(
    store: SqliteStore, control_id: str, received_at: float, record: dict[str, object] | None
) -> None:
    """A message stored and routed as the engine does, with its outcome record."""
    raw = f"MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240101||ADT^A28|{control_id}|P|2.5\r".encode()
    accepted = await store.accept(
        Incoming(
            route="adt",
            peer="127.0.0.1:1",
            received_at=received_at,
            sending_application="PAS",
            sending_facility="HOSP",
            control_id=control_id,
            message_type="ADT^A28",
            content_hash=hashlib.sha256(raw).digest(),
            raw=raw,
            ack=b"",
        )
    )
    decisions = [] if record is None else [Decision("ins", "ins_enrich", "x", payload=record)]
    await store.route_messages([RoutingResult(accepted.message_id, [], decisions)])


def row_for(outcome: Outcome, **fields: object) -> dict[str, object]:
    record = IdentityRecord(7, T0, "adt", "C7", "ADT^A28", outcome_record(outcome, "C7", **fields))
    return report_row(record)


def test_recuperee_row_carries_the_traits_used_and_the_ins_returned() -> None:
    row = row_for(
        Outcome.RECUPEREE,
        local_id="IPP002",
        status="PROV",
        calls=1,
        simulated=True,
        traits_used=TOUSSAINT,
        ins=TOUSSAINT_INS,
    )
    assert list(row) == list(COLUMNS)
    assert row | {"received_at": ""} == {
        "received_at": "",
        "route": "adt",
        "control_id": "C7",
        "event": "ADT^A28",
        "local_id": "IPP002",
        "status": "PROV",
        "outcome": "recuperee",
        "detail": "",
        "traits_differing": "",
        "removed_ins": "",
        "insi_calls": 1,
        "simulated": True,
        "birth_name": "ADRTROIS",
        "first_names": "TOUSSAINT",
        "sex": "M",
        "birth_date": "1960-01-01",
        "birth_place": "2B020",
        "ins_matricule": "160012B02077713",
        "ins_oid": "1.2.250.1.213.1.4.8",
    }
    received = dt.datetime.fromisoformat(str(row["received_at"]))
    assert received.timestamp() == T0 and received.utcoffset() is not None


def test_an_ins_is_reported_only_when_recuperee() -> None:
    for outcome in (Outcome.ADDED, Outcome.INCOHERENT):
        row = row_for(outcome, traits_used=TOUSSAINT, ins=TOUSSAINT_INS)
        assert (row["ins_matricule"], row["ins_oid"]) == ("", "")


def test_an_incoherent_row_says_which_ins_was_removed_and_which_traits_differ() -> None:
    row = row_for(
        Outcome.INCOHERENT,
        detail="traits_first_names",
        differing=("first_names", "birth_place"),
        removed=(
            ReceivedIns("160012B02077713", "1.2.250.1.213.1.4.8"),
            ReceivedIns("109076322088835", "1.2.250.1.213.1.4.9"),
            ReceivedIns("12345", "9.9"),
        ),
        traits_used=TOUSSAINT,
    )
    assert row["traits_differing"] == "first_names birth_place"
    assert row["removed_ins"] == "NIR …7713; NIA …8835; INS …2345"  # never the whole matricule
    assert "160012B02077713" not in json.dumps(row)


def test_a_record_of_a_failed_step_still_makes_a_row() -> None:
    record = IdentityRecord(1, T0, "adt", "C1", "ADT^A01", {"outcome": "error", "detail": "X"})
    row = report_row(record)
    assert (row["outcome"], row["detail"], row["insi_calls"], row["birth_name"]) == (
        "error",
        "X",
        0,
        "",
    )


def test_report_file_is_created_0600_and_never_replaced_without_force(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    old_umask = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        with ReportFile(path, "csv") as report:
            report.write([row_for(Outcome.NOT_FOUND)])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(CliError, match="already exists"):
        ReportFile(path, "csv")
    path.chmod(0o644)
    with ReportFile(path, "json", force=True) as report:
        report.write([])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text("utf-8")) == []


def test_report_file_does_not_follow_a_symbolic_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.csv"
    target.write_text("keep")
    (tmp_path / "report.csv").symlink_to(target)
    with pytest.raises(CliError, match="cannot create"):
        ReportFile(tmp_path / "report.csv", "csv", force=True)
    assert target.read_text() == "keep"


def test_a_report_that_fails_half_way_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    with pytest.raises(RuntimeError), ReportFile(path, "json") as report:
        report.write([row_for(Outcome.NOT_FOUND)])
        raise RuntimeError("interrupted")
    assert not path.exists()


def test_csv_with_a_semicolon_for_french_spreadsheets(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    with ReportFile(path, "csv", delimiter=";") as report:
        report.write([row_for(Outcome.NOT_FOUND, traits_used=TOUSSAINT)])
    header, line = path.read_text("utf-8-sig").splitlines()
    assert header == ";".join(COLUMNS) and ";not_found;" in line
    with pytest.raises(ValueError, match="delimiter"):
        ReportFile(tmp_path / "other.csv", "csv", delimiter="|")


def test_csv_keeps_accents_and_defuses_spreadsheet_formulas(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    row = row_for(Outcome.NOT_FOUND, local_id="=HYPERLINK(1)", traits_used=TOUSSAINT)
    row["first_names"] = "HÉLÈNE"
    with ReportFile(path, "csv") as report:
        report.write([row])
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # spreadsheets then read UTF-8
    with path.open(encoding="utf-8-sig", newline="") as file:
        (read,) = csv.DictReader(file)
    assert (read["local_id"], read["first_names"]) == ("'=HYPERLINK(1)", "HÉLÈNE")


async def test_store_report_pages_filters_and_keeps_arrival_order(
    store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.tools.report.PAGE", 2)
    outcomes = [
        Outcome.NOT_FOUND,
        Outcome.ADDED,
        Outcome.SEVERAL_FOUND,
        Outcome.RECUPEREE,
        Outcome.NOT_APPLICABLE,
        Outcome.INCOHERENT,
        Outcome.NOT_FOUND,
        Outcome.VERIFIED,
        Outcome.INSI_UNAVAILABLE,
        Outcome.INVALID_INSI_ANSWER,
        Outcome.NOT_QUALIFIABLE,
        Outcome.INVALID_TRAITS,
    ]
    for number, outcome in enumerate(outcomes):
        record = outcome_record(outcome, "x", traits_used=TOUSSAINT)
        await store_outcome(store, f"C{number}", T0 + number, record)
    await store_outcome(store, "NOREC", T0 + 99, None)  # a route without enrichment

    path = tmp_path / "report.json"
    with ReportFile(path, "json") as report:
        await write_store_report(store, report, T0 + 1, NEEDS_ACTION)
    rows = json.loads(path.read_text("utf-8"))
    needing_a_person = [
        ("C2", "several_found"),
        ("C3", "recuperee"),
        ("C5", "incoherent"),
        ("C6", "not_found"),
        ("C8", "insi_unavailable"),  # a person must search these patients again
        ("C9", "invalid_insi_answer"),
        ("C10", "not_qualifiable"),
    ]
    assert [(row["control_id"], row["outcome"]) for row in rows] == needing_a_person
    assert report.counts == {outcome: 1 for _, outcome in needing_a_person}

    everything = await identity_records(store, 0.0, None, 0, 100)
    assert [record.control_id for record in everything] == [f"C{n}" for n in range(12)]
    assert "ADRTROIS" not in repr(everything)  # records keep identity out of their repr
