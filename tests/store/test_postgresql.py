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
from engine.store import pg_connections, rules
from engine.store.backends import OpenStore, open_store
from engine.store.base import NewEntry, RoutingResult
from engine.store.flows import Flow, Outcome, Statement, run_async
from engine.store.pg_pipeline import run_round
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

        def stores() -> Flow[str]:
            yield Statement.own("CREATE TABLE kept (n int)")
            return "committed"

        def fails() -> Flow[str]:
            raise ValueError("a bug")
            yield Statement.own("SELECT 1")

        def dies() -> Flow[str]:
            yield Statement.own("SELECT pg_terminate_backend(pg_backend_pid())")
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


async def test_a_group_runs_its_writes_side_by_side_each_given_its_own_outcomes(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's writes run in rounds, the next statement of each in one round trip: each
    gets back its own outcomes (a duplicate looks up the id an earlier write of the same
    round drew), ids in the group's order, as many round trips as the longest write has
    statements, plus one to commit."""
    store = await open_store(postgres_url)
    try:
        (a0,) = await store.accept_many([incoming("A0")])
        rounds: list[int] = []

        async def counted(connection: Any, statements: list[Statement]) -> list[Outcome]:
            rounds.append(len(statements))
            return await run_round(connection, statements)

        monkeypatch.setattr(pg_connections, "run_round", counted)
        commits = store.commits
        batches = [["A1", "A2"], ["B1"], ["A0", "C1"], ["A1"]]
        routing = asyncio.create_task(
            store.route_messages([RoutingResult(a0.message_id, [NewEntry("down", None, None)])])
        )  # runs before the committer the first write below starts: all in one group
        accepted = await asyncio.gather(
            *(store.accept_many([incoming(c) for c in batch]) for batch in batches)
        )
        assert await routing is None
        assert store.commits == commits + 1  # one group
        assert len(rounds) == 3  # two statements at most (insert, look up a duplicate), COMMIT
        (a1, a2), (b1,), (again_a0, c1), (again_a1,) = accepted
        assert a0.message_id < a1.message_id < a2.message_id < b1.message_id < c1.message_id
        assert not any(m.duplicate for m in (a1, a2, b1, c1))
        assert (again_a0.duplicate, again_a0.message_id, again_a0.ack) == (
            True,
            a0.message_id,
            b"ACK of A0",
        )
        assert (again_a1.duplicate, again_a1.message_id) == (True, a1.message_id)
        received = await store.received(0, 10)
        assert [(m.message_id, m.control_id) for m in received] == [
            (a1.message_id, "A1"),
            (a2.message_id, "A2"),
            (b1.message_id, "B1"),
            (c1.message_id, "C1"),
        ]  # A0 was routed, in the same group
        (entry,) = await store.pending_entries("adt", "down", 0, 10)
        assert entry.message_id == a0.message_id
    finally:
        await store.close()


async def test_a_write_failing_in_a_later_round_fails_alone_and_none_of_it_commits(
    postgres_url: str,
) -> None:
    """A statement failing in the second round (the rest of that round skipped by the
    server) or a write raising after its first: the group is rolled back and its writes run
    again one at a time, the others committed with their own outcomes, nothing of the
    failing ones kept."""
    store = await open_store(postgres_url)
    try:
        await store.execute("CREATE TABLE kept (n int)")

        def divides_by_zero() -> Flow[None]:
            yield Statement.own("INSERT INTO kept VALUES (1)")
            yield Statement.own("SELECT 1 / 0")

        def raises() -> Flow[None]:
            yield Statement.own("INSERT INTO kept VALUES (2)")
            raise ValueError("a bug")

        def names_no_table() -> Flow[None]:  # fails as it is prepared, not as it runs
            yield Statement.own("INSERT INTO kept VALUES (3)")
            yield Statement.own("INSERT INTO nowhere VALUES (3)")

        def counts() -> Flow[int]:
            yield Statement.own("INSERT INTO kept VALUES (10)")
            yield Statement.own("INSERT INTO kept VALUES (11)")
            return (yield Statement.own("SELECT count(*) FROM kept")).rows[0][0]

        db = store._db  # type: ignore[union-attr]
        results = await asyncio.gather(
            store.accept_many([incoming("A1"), incoming("A2")]),
            db.write(divides_by_zero),
            db.write(raises),
            db.write(counts),
            db.write(names_no_table),
            store.accept_many([incoming("B1")]),
            return_exceptions=True,
        )
        assert isinstance(results[1], psycopg.errors.DivisionByZero)
        assert isinstance(results[2], ValueError)
        assert results[3] == 2  # its own rows only: the failing ones' were never committed
        assert isinstance(results[4], psycopg.errors.UndefinedTable)
        (a1, a2), (b1,) = results[0], results[5]  # type: ignore[misc]
        assert a1.message_id < a2.message_id < b1.message_id
        received = await store.received(0, 10)
        assert [m.control_id for m in received] == ["A1", "A2", "B1"]
        assert await store.fetch("SELECT n FROM kept ORDER BY n") == [(10,), (11,)]
    finally:
        await store.close()
