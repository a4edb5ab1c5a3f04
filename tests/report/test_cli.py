"""`ins-engine report identities`: --since, the store it reads, and a console that shows
counts, never patient data."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.commands.report import parse_since
from engine.enrich.outcome import Outcome
from engine.enrich.store import IdentityTables
from engine.errors import CliError
from engine.store.sqlite import SqliteStore
from tests.report.test_report import TOUSSAINT, outcome_record, store_outcome

NOW = 1_750_000_000.0


def config_file(tmp_path: Path) -> Path:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n',
        encoding="utf-8",
    )
    return config


def fill_store(tmp_path: Path, outcomes: list[tuple[Outcome, float]]) -> None:
    async def fill() -> None:
        store = await SqliteStore.open(str(tmp_path / "engine.db"), [IdentityTables()])
        try:
            for number, (outcome, received_at) in enumerate(outcomes):
                record = outcome_record(outcome, "x", traits_used=TOUSSAINT, local_id="IPP9")
                await store_outcome(store, f"C{number}", received_at, record)
        finally:
            await store.close()

    asyncio.run(fill())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - 7 * 86400),
        ("12h", NOW - 12 * 3600),
        ("2025-06-01T10:00:00+02:00", dt.datetime(2025, 6, 1, 8, tzinfo=dt.UTC).timestamp()),
        ("2025-06-01", dt.datetime(2025, 6, 1).astimezone().timestamp()),  # local midnight
    ],
)
def test_since_accepts_dates_times_and_durations(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["7", "7w", "yesterday", "2025-13-01"])
def test_since_rejects_anything_else_saying_what_it_wants(text: str) -> None:
    with pytest.raises(CliError, match=r"expected a date .* or a duration \(7d, 12h\)"):
        parse_since(text, NOW)


def test_console_shows_counts_only_and_since_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    fill_store(
        tmp_path,
        [(Outcome.NOT_FOUND, now - 10 * 86400), (Outcome.NOT_FOUND, now), (Outcome.ADDED, now)],
    )
    out = tmp_path / "report.json"
    args = ["report", "identities", "--config", str(config_file(tmp_path)), "--out", str(out)]
    assert main([*args, "--format", "json", "--since", "2d"]) == 0
    assert [row["control_id"] for row in json.loads(out.read_text("utf-8"))] == ["C1"]
    console = capsys.readouterr()
    assert "not_found" in console.out and "1 row(s)" in console.out
    assert not any(data in console.out + console.err for data in ("ADRTROIS", "TOUSSAINT", "IPP9"))

    assert main([*args, "--format", "json"]) == 2  # exists: refused
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--format", "json", "--force", "--all"]) == 0
    assert len(json.loads(out.read_text("utf-8"))) == 3


def test_a_missing_store_is_an_error_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)
    out = tmp_path / "report.csv"
    assert main(["report", "identities", "--config", str(config), "--out", str(out)]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "engine.db").exists()
    assert not out.exists()


def test_a_semicolon_delimiter_for_french_spreadsheets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(tmp_path, [(Outcome.NOT_FOUND, time.time())])
    out = tmp_path / "report.csv"
    args = ["report", "identities", "--config", str(config_file(tmp_path)), "--out", str(out)]
    assert main([*args, "--delimiter", ";"]) == 0
    header = out.read_text("utf-8-sig").splitlines()[0]
    assert header.startswith("received_at;route;control_id;")
    assert main([*args, "--force", "--delimiter", "|"]) == 2
    assert "--delimiter" in capsys.readouterr().err
    assert main([*args, "--force", "--format", "json", "--delimiter", ";"]) == 2
    assert "applies to --format csv" in capsys.readouterr().err
