"""`ins-engine store copy`: SQLite to PostgreSQL and back keeps every row, every id and so
every queue's order; a target that holds anything is refused."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.enrich.reviews import mark_handled
from engine.enrich.store import StoredResultCache, identity_records
from engine.steps.registry import registry
from engine.store.backends import OpenStore, open_store
from engine.store.base import AuditEntry, EntryStatus, NewEntry, RoutingResult
from engine.store.copy import TABLES, Table
from tests.store.conftest import enriched, incoming
from tests.support.engine_process import REPOSITORY


async def fill(store: OpenStore) -> None:
    """A store in use: entries in every state, outcomes, cache, audit, a message waiting."""
    ids = [
        (await store.accept(incoming(f"C{n}", body=f"PID|{n}".encode()))).message_id
        for n in range(8)
    ]
    await store.route_messages(
        [
            RoutingResult(message_id, [NewEntry("down", None, f"P{message_id % 3}"),
                                       NewEntry("copy", b"CHANGED\xe9", None)],
                          [enriched("found", n=message_id)])
            for message_id in ids[:7]
        ]
    )  # fmt: skip
    down = [entry.entry_id for entry in await store.pending_entries("adt", "down", 0, 100)]
    await store.mark_delivered(down[0], "AA")
    await store.record_failure(down[1], "AR", 0.0, park=True)
    await store.record_failure(down[2], "AE (ERR 207)", time.time() + 30, park=False)
    await store.skip([down[3]], "not for this lab")
    await store.resend([down[1]], "receiver fixed")
    await StoredResultCache(store).save("found-key", b'{"ins": "x"}', time.time() + 3600)
    assert await mark_handled(store, ids[0], "vera", "searched again")
    await store.claim_lease("routing", "old-engine", 10.0)
    await store.record_audit(AuditEntry(1000.0, "olga", "resend", "entry 2", "lab back"))


EXTENSION_TABLES = (
    Table("identity_outcomes", ("message_id", "recorded_at", "record")),
    Table("insi_cache", ("key", "payload", "expires_at")),
    Table("identity_reviews", ("message_id", "at", "user", "comment")),
)


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as db:
        return {
            table.name: db.execute(
                f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {table.columns[0]}"  # noqa: S608
            ).fetchall()
            for table in (*TABLES, *EXTENSION_TABLES)
        }


def test_sqlite_to_postgresql_and_back_keeps_every_row(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first, back = tmp_path / "first.db", tmp_path / "back.db"
    asyncio.run(_with_store(f"sqlite:///{first}", fill))
    assert main(["store", "copy", f"sqlite:///{first}", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "messages" in out and "8" in out and "insi_cache" in out
    asyncio.run(_with_store(postgres_url, lambda store: _same_queues(store, first)))
    assert main(["store", "copy", postgres_url, f"sqlite:///{back}"]) == 0
    assert sqlite_rows(back) == sqlite_rows(first)
    with sqlite3.connect(back) as db:
        assert db.execute("SELECT count(*) FROM leases").fetchone() == (0,)  # not copied
    asyncio.run(_with_store(postgres_url, lambda store: _goes_on_after(store, first)))


async def _same_queues(store: OpenStore, source: Path) -> None:
    """The PostgreSQL copy serves the same queues, and goes on after the copied ids."""
    original = await open_store(f"sqlite:///{source}", extensions=registry().store_extensions())
    try:
        for destination in ("down", "copy"):
            assert await store.pending_entries("adt", destination, 0, 100) == (
                await original.pending_entries("adt", destination, 0, 100)
            )
        assert await store.queue_status() == await original.queue_status()
        assert await identity_records(store, 0, None) == await identity_records(original, 0, None)
        for message_id in range(1, 9):
            assert await store.decisions(message_id) == await original.decisions(message_id)
        for status in EntryStatus:
            assert await store.list_entries(status, None, None, 100) == (
                await original.list_entries(status, None, None, 100)
            )
        assert [message.control_id for message in await store.received(0, 10)] == ["C7"]
        assert await StoredResultCache(store).load("found-key") == b'{"ins": "x"}'
        assert await store.leases() == []
    finally:
        await original.close()


async def _goes_on_after(store: OpenStore, source: Path) -> None:
    """The copy knows the copied messages, and hands out ids after the copied ones."""
    original = await open_store(f"sqlite:///{source}", extensions=registry().store_extensions())
    try:
        assert (await store.accept(incoming("C3", body=b"PID|3"))).duplicate
        fresh = await store.accept(incoming("AFTER"))
        assert fresh.message_id > 8  # the copied ids are not handed out again
        (delivered,) = await store.list_entries(EntryStatus.DELIVERED, None, None, 10)
        (resent,) = await store.resend([delivered.entry_id], "again")  # a copy at the tail
        tail = (await original.list_entries(EntryStatus.PENDING, None, None, 100))[-1]
        assert resent.new_entry_id is not None and resent.new_entry_id > tail.entry_id
    finally:
        await original.close()


def test_a_target_with_rows_is_refused_and_left_as_it_was(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "source.db"
    asyncio.run(_with_store(f"sqlite:///{source}", fill))
    asyncio.run(
        _with_store(
            postgres_url,
            lambda store: StoredResultCache(store).save("other", b"x", time.time() + 60),
        )
    )
    assert main(["store", "copy", f"sqlite:///{source}", postgres_url]) == 2
    error = capsys.readouterr().err
    assert "not empty" in error and "insi_cache" in error and "Traceback" not in error
    asyncio.run(_with_store(postgres_url, _only_the_other_row))


async def _only_the_other_row(store: OpenStore) -> None:
    assert await store.received(0, 10) == []
    assert await StoredResultCache(store).load("other") == b"x"
    assert await StoredResultCache(store).load("found-key") is None


def test_copy_refuses_a_missing_source_and_the_same_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"sqlite:///{tmp_path / 'target.db'}"
    assert main(["store", "copy", f"sqlite:///{tmp_path / 'absent.db'}", target]) == 2
    assert "no store at" in capsys.readouterr().err
    assert main(["store", "copy", target, target]) == 2
    assert "the same store" in capsys.readouterr().err
    assert main(["store", "copy", "postgresql://u:secret@db/x", target]) == 2
    error = capsys.readouterr().err
    assert "no password in the URL" in error and "secret" not in error


@pytest.mark.parametrize("umask", ["022", "000"])
@pytest.mark.system
def test_a_sqlite_copy_is_readable_by_its_owner_only(tmp_path: Path, umask: str) -> None:
    """`ins-engine store copy` run under the operator's umask writes a store holding patient
    data: 0600 like the engine's own, and the -wal and -shm files SQLite creates beside it
    when it is opened take the same mode."""
    source, target = tmp_path / "source.db", tmp_path / "copy" / "target.db"
    asyncio.run(_with_store(f"sqlite:///{source}", fill))
    copied = subprocess.run(
        ["sh", "-c", f'umask {umask} && exec "$@"', "sh", sys.executable, "-m", "engine",
         "store", "copy", f"sqlite:///{source}", f"sqlite:///{target}"],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with contextlib.closing(sqlite3.connect(target)) as db:
        assert db.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (8,)
        for name in ("target.db", "target.db-wal", "target.db-shm"):
            assert stat.S_IMODE((target.parent / name).stat().st_mode) == 0o600, name


async def _with_store(url: str, action: Any) -> None:
    store = await open_store(url, extensions=registry().store_extensions())
    try:
        await action(store)
    finally:
        await store.close()
