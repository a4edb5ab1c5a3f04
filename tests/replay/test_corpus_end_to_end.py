"""hl7_samples/ through the real thing: `ins-engine replay` into an `ins-engine run` subprocess
(INSi simulator, SQLite) that delivers to an MLLP receiver. Every ACK, every delivered message
and every recorded outcome must be what expectations.toml says.

The whole run happens once per module; each expectation is then checked on its own, so a
failure names the control id.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.message import Message
from engine.testing.receiver import Receiver
from engine.tools.replay.acks import ACCEPTED
from tests.replay.conftest import SAMPLES
from tests.replay.corpus import (
    EXPECTATIONS,
    MESSAGES,
    Expectation,
    expected_ins,
    ins_repetitions,
    patient_strings,
    sample_of,
)
from tests.support.cli import run_beside
from tests.support.engine_process import EngineProcess

pytestmark = pytest.mark.system

INSI_ANSWERS = {"added", "verified", "not_found", "several_found"}
NOT_SEARCHED = {"not_applicable", "invalid_traits"}


@dataclass(frozen=True)
class CorpusRun:
    summary: dict[str, Any]  # `ins-engine replay --json`
    replay_status: int
    delivered: list[tuple[str, bytes]]  # (MSH-10, payload), in arrival order
    outcomes: dict[str, dict[str, Any]]  # MSH-10 → identity_outcomes record
    engine_log: list[dict[str, Any]]
    engine_status: int

    def payload(self, control_id: str) -> bytes:
        (found,) = [payload for cid, payload in self.delivered if cid == control_id]
        return found


def write_config(folder: Path, downstream: str) -> Path:
    config = folder / "config.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\nlog_format = "json"\n\n'
        "[insi]\nsimulator = true\n\n"
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n\n'
        f'[[routes.destinations]]\nname = "downstream"\nmllp = "{downstream}"\n',
        encoding="utf-8",
    )
    return config


async def replay(host: str, port: int) -> tuple[int, dict[str, Any]]:
    """The real command line (in this process: tests/support/cli.py), one connection:
    messages go in sorted file order."""
    ran = await run_beside("replay", str(SAMPLES), "--to", f"{host}:{port}", "--json")
    return ran.status, json.loads(ran.out)


def recorded_outcomes(database: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT m.control_id, o.record FROM identity_outcomes o"
            " JOIN messages m ON m.id = o.message_id ORDER BY m.id"
        ).fetchall()
    return {control_id: json.loads(record) for control_id, record in rows}


async def run_corpus(folder: Path) -> CorpusRun:
    async with Receiver() as downstream:
        engine = EngineProcess(write_config(folder, downstream.address))
        await engine.start()
        try:
            replay_status, summary = await replay(*engine.address("adt"))
            await downstream.wait_for(len(MESSAGES))
        finally:
            engine_status = await engine.terminate()
    return CorpusRun(
        summary,
        replay_status,
        [(received.control_id, received.payload) for received in downstream.received],
        recorded_outcomes(folder / "engine.db"),
        engine.records,
        engine_status,
    )


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    yield asyncio.run(run_corpus(tmp_path_factory.mktemp("corpus")))


def delivered_message(run: CorpusRun, entry: Expectation) -> Message:
    return Message.parse(decode(run.payload(str(entry["control_id"])), CharsetPolicy()).text)


def test_every_ack_is_as_expected(corpus_run: CorpusRun) -> None:
    summary = corpus_run.summary
    assert summary["sent"] == summary["messages"] == len(EXPECTATIONS)
    codes = {code: count for code, count in summary["acks"].items() if count}
    assert codes == Counter(str(entry["ack"]) for entry in EXPECTATIONS)
    refused = {row["control_id"]: row["outcome"] for row in summary["not_accepted"]}
    expected_refused = {
        str(entry["control_id"]): entry["ack"]
        for entry in EXPECTATIONS
        if entry["ack"] not in ACCEPTED
    }
    assert refused == expected_refused
    assert corpus_run.replay_status == (1 if expected_refused else 0)


def test_delivered_once_each_in_replay_order(corpus_run: CorpusRun) -> None:
    assert [cid for cid, _ in corpus_run.delivered] == [m.control_id for m in MESSAGES]


def test_engine_stops_cleanly(corpus_run: CorpusRun) -> None:
    assert corpus_run.engine_status == 0


def test_engine_log_names_no_patient(corpus_run: CorpusRun) -> None:
    log = json.dumps(corpus_run.engine_log, ensure_ascii=False)
    assert sorted(text for text in patient_strings() if text in log) == []


@pytest.mark.parametrize("entry", EXPECTATIONS, ids=lambda entry: entry["control_id"])
def test_recorded_outcome(corpus_run: CorpusRun, entry: Expectation) -> None:
    record = corpus_run.outcomes[str(entry["control_id"])]
    assert (record["outcome"], record["event"]) == (entry["outcome"], entry["event"].split("^")[1])
    if "detail" in entry:
        assert record["detail"] == entry["detail"]
    if entry["outcome"] in INSI_ANSWERS:
        assert record["simulated"] is True, "an answer of the simulator says so"
    elif entry["outcome"] in NOT_SEARCHED:
        assert record["calls"] == 0, "INSi is not called"


@pytest.mark.parametrize("entry", EXPECTATIONS, ids=lambda entry: entry["control_id"])
def test_delivered_message(corpus_run: CorpusRun, entry: Expectation) -> None:
    if entry.get("pass_through_unchanged", False):
        assert corpus_run.payload(str(entry["control_id"])) == sample_of(entry).payload
    ins = expected_ins(entry)
    if ins is not None:
        pid = delivered_message(corpus_run, entry).segment("PID")
        assert pid is not None
        assert ins_repetitions(pid) == ins
