"""What only a store several engines share must get right: ids in commit order across
engines, duplicates decided once across engines, and the password kept out of sight."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.cli import main
from engine.errors import StoreError
from engine.store import rules
from engine.store.backends import OpenStore, open_store
from engine.store.base import NewEntry, RoutingResult
from engine.store.flows import run_async
from engine.store.pg_connections import Connection
from engine.store.postgresql import execute_statement
from tests.store.conftest import incoming
from tests.support.postgres import PASSWORD

# A trigger that holds one message's transaction open after its row got its id: an
# engine slowed down between drawing an id and committing (a busy machine, a GC pause).
STALL = """
CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.control_id LIKE 'SLOW%' THEN PERFORM pg_sleep(0.5); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER stall AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION stall();
"""


async def stalled(admin: psycopg.AsyncConnection[Any]) -> bool:
    """A transaction is held in the STALL trigger."""
    cursor = await admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
    )
    row = await cursor.fetchone()
    return row is not None and row[0] > 0


@pytest.fixture
async def engines(postgres_url: str) -> AsyncIterator[list[OpenStore]]:
    """Three stores on one database: three engines' connections."""
    stores = [await open_store(postgres_url) for _ in range(3)]
    yield stores
    for store in stores:
        await store.close()


async def test_a_reader_after_the_last_id_never_misses_a_message_committed_late(
    postgres_url: str, engines: list[OpenStore]
) -> None:
    slow_engine, fast_engine, router = engines
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        await admin.execute(STALL)
    seen: list[str] = []

    async def read_after_last_id() -> None:  # the router's way of reading the inbox
        cursor = 0
        while len(seen) < 2:
            for message in await router.received(cursor, 10):
                seen.append(message.control_id)
                cursor = message.message_id
            await asyncio.sleep(0.005)

    reading = asyncio.create_task(read_after_last_id())
    slow = asyncio.create_task(slow_engine.accept(incoming("SLOW")))
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        async with asyncio.timeout(30):  # until SLOW's row is inserted (or even committed)
            while not slow.done() and not await stalled(admin):  # noqa: ASYNC110 - the server offers no event
                await asyncio.sleep(0.005)
    fast = await fast_engine.accept(incoming("FAST"))
    await asyncio.wait_for(reading, 5)  # the reader saw both: SLOW was not skipped
    assert seen == ["SLOW", "FAST"]
    assert slow.done()  # FAST could only commit after SLOW had,
    assert fast.message_id > (await slow).message_id  # so its id is the larger


async def test_the_same_message_to_two_engines_at_once_is_stored_once(
    postgres_url: str, engines: list[OpenStore]
) -> None:
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        await admin.execute(STALL)
    # The first engine's transaction is still open when the second sees the same key.
    first, second = await asyncio.gather(
        engines[0].accept(incoming("SLOW1", ack=b"first ACK")),
        engines[1].accept(incoming("SLOW1", ack=b"second ACK")),
    )
    assert sorted([first.duplicate, second.duplicate]) == [False, True]
    assert first.message_id == second.message_id
    assert first.ack == second.ack  # the duplicate is answered with the original ACK
    assert len(await engines[2].received(0, 10)) == 1


def test_the_password_comes_from_the_environment_never_the_file(
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PGPASSWORD")
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "{postgres_url}"\nstore_password_env = "INS_ENGINE_DB_PASSWORD"\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        '[[routes.destinations]]\nname = "down"\nfile = "outbox"\n',
        encoding="utf-8",
    )
    assert main(["store", "migrate", "--config", str(config)]) == 2
    assert "INS_ENGINE_DB_PASSWORD" in capsys.readouterr().err  # not set: says which
    assert main(["check", "--config", str(config)]) == 2
    assert "engine.store_password_env: set the store's password" in capsys.readouterr().err
    monkeypatch.setenv("INS_ENGINE_DB_PASSWORD", "not-the-password")
    assert main(["queue", "status", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "password authentication failed" in error and "not-the-password" not in error
    assert "Traceback" not in error
    monkeypatch.setenv("INS_ENGINE_DB_PASSWORD", PASSWORD)
    assert main(["store", "migrate", "--config", str(config)]) == 0
    assert main(["queue", "status", "--config", str(config)]) == 0
    assert PASSWORD not in capsys.readouterr().out


async def test_a_fenced_write_holds_off_a_takeover_until_it_commits(postgres_url: str) -> None:
    """A delivery mark under a lease and another engine's claim of that lease: the claim
    waits for the mark's transaction, so no mark lands after the lease changed hands."""
    store = await open_store(postgres_url)
    try:
        (message_id,) = [(await store.accept(incoming("F1"))).message_id]
        await store.route_messages([RoutingResult(message_id, [NewEntry("down", None, None)])])
        (entry,) = await store.pending_entries("adt", "down", 0, 10)
        claim = await store.claim_lease("delivery adt/down", "engine-a", 30.0)
        assert claim.lease is not None
        async with await psycopg.AsyncConnection.connect(postgres_url) as marking:
            async with marking.transaction():
                marks = [(entry.entry_id, "AA")]
                marking_flow = rules.mark_delivered_many(marks, claim.lease, 0.0)
                execute = functools.partial(execute_statement, marking)
                assert await run_async(marking_flow, execute) == [True]
                takeover = asyncio.create_task(
                    store.claim_lease("delivery adt/down", "engine-b", 30.0, force=True)
                )
                await asyncio.sleep(0.5)
                assert not takeover.done()  # waits for the mark's commit
            taken = await asyncio.wait_for(takeover, 10)
        assert taken.lease is not None and taken.lease.token > claim.lease.token
    finally:
        await store.close()


async def test_a_group_retried_job_by_job_keeps_what_committed_when_the_connection_dies(
    postgres_url: str,
) -> None:
    """A failing job makes its group run again one job at a time; should the connection die
    on the way, the jobs committed before keep their results (a stored message is not
    answered as lost) and only the rest fail."""
    store = await open_store(postgres_url)
    try:

        async def stores(connection: Connection) -> str:
            await connection.execute("CREATE TABLE kept (n int)")
            return "committed"

        async def fails(connection: Connection) -> str:
            raise ValueError("a bug")

        async def dies(connection: Connection) -> str:
            await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            return "never"

        db = store._db  # type: ignore[union-attr]
        results = await asyncio.gather(
            db.write(stores), db.write(fails), db.write(dies), return_exceptions=True
        )
        assert results[0] == "committed"
        assert isinstance(results[1], ValueError)
        assert isinstance(results[2], StoreError)
        assert await store.fetch("SELECT count(*) FROM kept") == [(0,)]  # it did commit
    finally:
        await store.close()
