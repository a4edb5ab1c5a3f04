"""`ins-engine messages` on the store of an engine that received messages
over MLLP (SQLite and PostgreSQL): filters, pages, JSON, the CSV export, the outcomes
explained, and a date it cannot read answered without a traceback."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from engine.app.runtime import Engine
from engine.tools.message_search import outcome_meanings
from tests.conftest import StartEngine
from tests.support.cli import run_beside
from tests.support.messages import adt
from tests.test_end_to_end import send


async def a_store_with_messages(start_engine: StartEngine, store_url: str) -> tuple[Engine, str]:
    engine = await start_engine(
        '[[routes.destinations]]\nname = "down"\nmllp = "127.0.0.1:1"\n', store=store_url
    )
    payloads = [
        adt(f"CLI-{n:03}", "A28" if n % 2 else "A31", patient_id=f"P{n % 3}") for n in range(7)
    ]
    assert all(b"MSA|AA|" in answer for answer in await send(engine, payloads))
    return engine, engine.config.source


async def test_messages_are_found_paged_and_exported(
    start_engine: StartEngine, store_url: str, tmp_path: Path
) -> None:
    _, config = await a_store_with_messages(start_engine, store_url)
    code, out, err = await run_beside("messages", "--config", config, "--patient-id", "P1")
    assert code == 0, err
    assert [line.split()[4] for line in out.splitlines()[1:]] == ["CLI-004", "CLI-001"]
    code, out, _ = await run_beside(
        "messages", "--config", config, "--control-id", "CLI-00", "--type", "ADT^A28", "--json"
    )
    assert [m["control_id"] for m in json.loads(out)] == ["CLI-005", "CLI-003", "CLI-001"]
    assert json.loads(out)[0]["deliveries"] == {"down": "pending"}
    code, out, _ = await run_beside("messages", "--config", config, "--limit", "4")
    *rows, hint = out.splitlines()[1:]
    assert [row.split()[4] for row in rows] == ["CLI-006", "CLI-005", "CLI-004", "CLI-003"]
    before = hint.rsplit(" ", 1)[1]
    assert hint == f"older messages: add --before {before}"
    code, out, _ = await run_beside("messages", "--config", config, "--before", before)
    assert [line.split()[4] for line in out.splitlines()[1:]] == ["CLI-002", "CLI-001", "CLI-000"]
    export = tmp_path / "found.csv"
    code, _, err = await run_beside(
        "messages", "--config", config, "--status", "pending", "--csv", str(export)
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(export.read_text("utf-8-sig"))))
    assert len(rows) == 7 and rows[0]["deliveries"] == "down=pending"
    assert "DARK" not in export.read_text("utf-8-sig")  # metadata only


async def test_outcomes_are_listed_with_their_meaning_and_bad_input_answered(
    start_engine: StartEngine, store_url: str
) -> None:
    _, config = await a_store_with_messages(start_engine, store_url)
    code, out, _ = await run_beside("messages", "--outcomes")
    assert code == 0
    meaning = outcome_meanings()["insi_unavailable"]
    assert any(line.split(None, 1) == ["insi_unavailable", meaning] for line in out.splitlines())
    code, out, err = await run_beside("messages", "--config", config, "--since", "yesterday")
    assert code != 0 and "Traceback" not in err
    assert "since: a date such as 2024-01-31 or 2024-01-31T08:00" in err
    code, out, err = await run_beside("messages", "--config", config, "--route", "none")
    assert (code, out) == (0, "no message matches\n")
