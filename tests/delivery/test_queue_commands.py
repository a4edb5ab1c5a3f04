"""Operator commands: a skip against a send in flight, usage errors that exit 2, tracing one
message by its control id, and bulk resend/skip of a destination's parked entries."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from engine.cli import main
from engine.mllp.client import MllpClient
from engine.store.base import EntryStatus
from engine.store.sqlite import SqliteStore
from engine.testing.receiver import Received, Receiver, Reply, ack
from tests.conftest import StartEngine
from tests.delivery.conftest import Route
from tests.delivery.harness import delivering, entries, eventually, route_all, store_messages
from tests.support.messages import adt


def audit(database: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT entry_id, action FROM operator_actions ORDER BY id").fetchall()


async def test_a_skip_wins_over_a_send_in_flight_and_the_audit_says_it_was_delivered(
    tmp_path: Path, store: SqliteStore, route: Route
) -> None:
    skipped_meanwhile = asyncio.Event()

    def late(received: Received) -> Reply:  # the send is in flight until the skip is done
        return Reply(ack(received).payload, held_until=skipped_meanwhile)

    async with Receiver(late) as downstream:
        routes = [route(mllp=downstream.address)]
        await store_messages(store, "adt", [adt("F1")])
        await route_all(store, routes)
        with capture_logs() as logs:
            async with delivering(store, *routes):
                await downstream.wait_for(1)
                ((entry_id, _),) = [
                    (e.entry_id, e) for e in await entries(store, EntryStatus.PENDING)
                ]
                (skipped,) = await store.skip([entry_id], "sent to the wrong lab")
                assert skipped.done
                skipped_meanwhile.set()
                await eventually(lambda: _audited(tmp_path, 2))
    assert await store.entry_status(entry_id) is EntryStatus.SKIPPED  # the skip stands
    assert audit(tmp_path / "engine.db") == [(entry_id, "skip"), (entry_id, "delivered after skip")]
    (warning,) = [log for log in logs if log["event"].startswith("message delivered after")]
    assert (warning["control_id"], warning["entry_id"]) == ("F1", entry_id)


async def _audited(folder: Path, count: int) -> bool:
    return len(audit(folder / "engine.db")) == count


def _config(folder: Path) -> Path:
    config = folder / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
        '[[routes.destinations]]\nname = "down"\nmllp = "127.0.0.1:1"\n'
        '[[routes]]\nname = "lab"\nlisten = "127.0.0.1:2"\nenrich = false\n'
        '[[routes.destinations]]\nname = "down"\nmllp = "127.0.0.1:1"\n',
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--route", "nosuch"], "no route 'nosuch' in {config} (routes: adt, lab)"),
        (
            ["list", "--destination", "nosuch"],
            "no destination 'nosuch' in {config} (destinations: down)",
        ),
        (
            ["list", "--route", "adt", "--destination", "lab"],
            "no destination 'lab' in route 'adt' (destinations: down)",
        ),
        (["skip", "--reason", "r"], "give entry ids, or --parked --destination NAME"),
        (["skip", "--parked", "--reason", "r"], "--parked needs --destination NAME"),
        (
            ["resend", "--parked", "--destination", "down", "--reason", "r"],
            "destination 'down' is in routes adt, lab: add --route",
        ),
        (["resend", "1", "--parked", "--reason", "r"], "give entry ids or --parked, not both"),
    ],
)
def test_names_the_configuration_does_not_have_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    config = _config(tmp_path)
    assert main(["queue", *args, "--config", str(config)]) == 2
    assert message.format(config=config) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["skip", "1", "--reason", "  "], "say why: the reason is recorded with the action"),
        (["skip", str(2**63), "--reason", "r"], "is not an entry id (a whole number from 1 to"),
        (["resend", "-4", "--reason", "r"], "is not an entry id"),
        (["resend", "²", "--reason", "r"], "is not an entry id"),  # isdigit, not int
        (["list", "--limit", str(2**64)], "a whole number from 1 to 100000"),
        (["list", "--limit", "0"], "a whole number from 1 to 100000"),
    ],
)
def test_values_out_of_range_exit_2_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["queue", *args, "--config", str(_config(tmp_path))])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


async def test_a_message_is_traced_from_its_arrival_to_each_delivery_attempt(
    start_engine: StartEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["AE", "AA"])

    def once_refused(received: Received) -> Reply:
        return ack(received, next(answers), error_code="207")

    async with Receiver(once_refused) as downstream:
        engine = await start_engine(
            "[[routes.destinations]]\n"
            f'name = "lab"\nmllp = "{downstream.address}"\nbackoff_base_s = 0.05\n',
            enrich=True,
        )
        client = await MllpClient.connect(*engine.listeners["adt"].address)
        await client.exchange(adt("TRACE1"), 5)
        await client.close()
        await downstream.wait_for(2)
        await eventually(lambda: _delivered(tmp_path))
        config = str(tmp_path / "config0.toml")
        status = await asyncio.to_thread(
            main, ["queue", "list", "--control-id", "TRACE1", "--config", config]
        )
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("message 1, route adt, ADT^A28, from PAS / HOSP (127.0.0.1:")
    assert lines[1].endswith("  stored, answered AA")
    assert lines[2] == "  step ins_enrich: not_found (01)"  # the simulator knows nobody
    assert lines[3] == "  routed"
    assert lines[4] == "  entry 1 -> lab: delivered, 2 attempt(s)"
    assert lines[5].endswith("  attempt failed: AE (ERR 207)")
    assert lines[6].endswith("  delivered (ACK AA)")
    assert len(lines) == 7
    assert "DARK" not in "".join(lines)  # no patient data
    unknown = await asyncio.to_thread(
        main, ["queue", "list", "--control-id", "NOSUCH", "--config", config]
    )
    assert unknown == 1


async def _delivered(folder: Path) -> bool:
    with sqlite3.connect(folder / "engine.db") as db:
        return db.execute("SELECT status FROM outbox").fetchall() == [("delivered",)]


async def test_every_parked_entry_of_a_destination_is_resent_or_skipped_at_once(
    tmp_path: Path, store: SqliteStore, route: Route, capsys: pytest.CaptureFixture[str]
) -> None:
    refusing = {"P1", "P2", "P4"}

    def answer(received: Received) -> Reply:
        return ack(received, "AR" if received.control_id in refusing else "AA")

    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address)]
        await store_messages(store, "adt", [adt(f"P{n}") for n in range(1, 6)])
        await route_all(store, routes)
        async with delivering(store, *routes) as service:
            await downstream.wait_for(5)
            await eventually(lambda: _parked(store, 3))
            config = _config(tmp_path)
            refusing.discard("P2")  # the receiver now takes P2, not yet P1 and P4
            args = ["--route", "adt", "--destination", "down", "--config", str(config)]
            resent = await asyncio.to_thread(
                main, ["queue", "resend", "--parked", *args, "--reason", "receiver fixed"]
            )
            service.wake()
            await downstream.wait_for(8)
            await eventually(lambda: _parked(store, 2))
            skipped = await asyncio.to_thread(
                main, ["queue", "skip", "--parked", *args, "--reason", "known bad"]
            )
            await eventually(lambda: _parked(store, 0))
    assert (resent, skipped) == (0, 0)
    out = capsys.readouterr().out
    assert "3 of 3 parked entries of down: resend" in out
    assert "2 of 2 parked entries of down: skip" in out
    assert downstream.control_ids == ["P1", "P2", "P3", "P4", "P5", "P1", "P2", "P4"]
    assert len(await entries(store, EntryStatus.SKIPPED)) == 2


async def _parked(store: SqliteStore, count: int) -> bool:
    return len(await entries(store, EntryStatus.PARKED)) == count
