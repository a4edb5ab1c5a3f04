"""`ins-engine reprocess` beside a running engine: the copy runs through the route again,
carries its own MSH-10, and reaches its destination after the entries queued before it;
`--dry-run` changes nothing; bad names are usage errors. The copy is made by a subprocess,
as an operator does it; the listings and the usage errors are read in this process."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from engine.testing.receiver import Received, Receiver, Reply, ack
from tests.conftest import StartEngine
from tests.support.cli import run_beside
from tests.support.messages import adt
from tests.support.waiting import until
from tests.test_end_to_end import ins_engine, send


def message_id(database: Path, control_id: str) -> int:
    with sqlite3.connect(database) as db:
        (found,) = db.execute("SELECT id FROM messages WHERE control_id = ?", (control_id,))
    return int(found[0])


async def test_a_reprocessed_copy_is_delivered_after_the_entries_queued_before_it(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    release = asyncio.Event()

    def refuse_second(received: Received) -> Reply:  # M2 blocks the queue until released
        refused = received.control_id == "M2" and not release.is_set()
        return ack(received, "AE" if refused else "AA")

    async with Receiver(refuse_second) as downstream:
        engine = await start_engine(  # the head M2 is retried until the test releases it
            f'[[routes.destinations]]\nname = "down"\nmllp = "{downstream.address}"\n'
            'on_failure = "block"\nmax_attempts = 1000\nbackoff_base_s = 0.1\n'
            "backoff_cap_s = 0.2\n"
        )
        config = str(engine.config.source)
        await send(engine, [adt("M1"), adt("M2")])
        await downstream.wait_for(2)
        first = message_id(tmp_path / "engine.db", "M1")

        status, out, err = await run_beside(
            "reprocess", str(first), "--reason", "INSi back", "--dry-run", "--config", config
        )
        assert status == 0, err
        assert f"message {first} M1 ADT^A28 adt received" in out and "-> down" in out
        assert "1 message(s) would be reprocessed (dry run: nothing changed)" in out

        selection = ["--route", "adt", "--since", "2000-01-01", "--to", "down"]
        status, out, err = await run_beside(
            "reprocess", *selection, "--reason", "r", "--dry-run", "--config", config
        )
        assert status == 0, err
        listed = [line.split()[2] for line in out.splitlines() if line.startswith("message ")]
        assert listed == ["M1", "M2"]  # oldest first: the order their copies would be queued

        status, out, err = await ins_engine(
            "reprocess", str(first), "--reason", "INSi back", "--config", config
        )
        assert status == 0, err
        assert f"message {first}: reprocessed as " in out and "(M1-R1)" in out
        release.set()
        await until(lambda: "M1-R1" in downstream.control_ids)

    received = downstream.control_ids
    assert received[-2:] == ["M2", "M1-R1"]  # at the tail: after M2, retried until delivered
    assert received.count("M1") == received.count("M1-R1") == 1
    original, copy = downstream.received[0].payload, downstream.received[-1].payload
    assert copy == original.replace(b"|M1|", b"|M1-R1|")  # the route's steps ran again
    with sqlite3.connect(tmp_path / "engine.db") as db:
        audit = db.execute("SELECT user, action, detail FROM audit").fetchall()
    assert audit == [(audit[0][0], "reprocess", "INSi back")] and audit[0][0].startswith("cli")


async def test_usage_errors_exit_2_without_a_traceback(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    engine = await start_engine('[[routes.destinations]]\nname = "down"\nmllp = "127.0.0.1:1"\n')
    config = str(engine.config.source)
    for args, message in [
        (
            ["--route", "adt", "--to", "lab"],
            "no destination lab in route 'adt' (destinations: down)",
        ),
        (["--route", "nosuch"], "no route 'nosuch'"),
        ([], "give message ids, or select with --route R"),
        (["1", "--route", "adt"], "give message ids or a selection"),
        (["x1"], "'x1' is not a message id"),
        (["--route", "adt", "--since", "yesterday"], "a date such as 2026-12-01"),
    ]:
        status, _, err = await run_beside("reprocess", *args, "--reason", "r", "--config", config)
        assert (status, message in err, "Traceback" in err) == (2, True, False), err
