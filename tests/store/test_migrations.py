"""Schema versions: a store of the previous release is refused until `ins-engine store
migrate` has run, then keeps every row; a new store is created at the latest version."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.enrich.store import StoredResultCache, identity_records
from engine.steps.registry import registry
from engine.store.backends import OpenStore, latest_version, migrate, open_store
from engine.store.base import EntryStatus, NewEntry, RoutingResult
from engine.store.migrations import StoreVersionError
from engine.store.postgresql import PostgresStore
from tests.store.conftest import enriched, incoming

RELEASE_SCHEMA = (Path(__file__).parent / "release_schema.sql").read_text(encoding="utf-8")


def release_store(path: Path) -> None:
    """A store file as the release before versioned migrations left it: its schema (kept
    verbatim in release_schema.sql, with the INS step's tables and user_version 1) and rows
    in every table."""
    with sqlite3.connect(path) as db:
        db.executescript(RELEASE_SCHEMA)
        for number in range(1, 5):
            db.execute(
                """INSERT INTO messages VALUES (?, ?, 'adt', '127.0.0.1:1', 'PAS', 'HOSP', ?,
                       'ADT^A28', ?, 3, ?, ?, 'routed')""",
                (number, 1000.0 + number, f"OLD{number}", b"hash", b"MSH", b"ACK"),
            )
            db.execute(
                """INSERT INTO outbox (id, message_id, route, destination, payload, patient_key,
                       status, attempts, next_attempt_at, updated_at)
                   VALUES (?, ?, 'adt', 'down', NULL, ?, ?, ?, 0, 2000)""",
                (number, number, f"P{number}", "delivered" if number == 1 else "pending", 0),
            )
            db.execute(
                "INSERT INTO identity_outcomes VALUES (?, 1500, ?)",
                (number, '{"outcome": "found"}'),
            )
            db.execute(
                """INSERT INTO step_decisions (message_id, recorded_at, destination, step, kind,
                       outcome, detail) VALUES (?, 1500, '', 'ins_enrich', 'ins_enrich',
                       'found', '')""",
                (number,),
            )
        db.execute("UPDATE outbox SET status = 'parked', last_error = 'AR' WHERE id = 2")
        db.execute("INSERT INTO insi_cache VALUES ('k', ?, ?)", (b"cached", time.time() + 600))
        db.execute("INSERT INTO operator_actions VALUES (1, 1800, 2, 'skip', 'kept reason')")
        db.execute("INSERT INTO delivery_failures VALUES (1, 2, 1700, 'AR', 1)")
        db.execute("INSERT INTO engine_state VALUES ('insi', 1900, '{}')")


def config_for(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "{url}"\nlog_format = "json"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
        '[[routes.destinations]]\nname = "down"\nfile = "outbox"\n',
        encoding="utf-8",
    )
    return config


def test_a_previous_release_file_is_refused_then_migrated_without_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "engine.db"
    release_store(database)
    url = f"sqlite:///{database}"
    with pytest.raises(StoreVersionError) as refused:
        asyncio.run(open_store(url))
    assert str(database) in str(refused.value)
    assert "ins-engine store migrate" in str(refused.value)
    config = config_for(tmp_path, url)
    # The engine refuses to start, naming the store and the command (exit 2, no traceback).
    assert main(["run", "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert str(database) in error and "store migrate" in error and "Traceback" not in error

    assert main(["store", "migrate", "--config", str(config)]) == 0
    assert f"migrated from schema version 0 to {latest_version()}" in capsys.readouterr().out
    asyncio.run(check_release_rows(url))
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT reason FROM operator_actions WHERE id = 1").fetchone() == (
            "kept reason",
        )
    assert main(["store", "migrate", "--config", str(config)]) == 0
    assert f"already at schema version {latest_version()}" in capsys.readouterr().out


async def check_release_rows(url: str) -> None:
    """Every row of `release_store` is there, and the store goes on from them."""
    store = await open_store(url, extensions=registry().store_extensions())
    try:
        pending = await store.pending_entries("adt", "down", 0, 10)
        assert [entry.entry_id for entry in pending] == [3, 4]  # the queue, its order, its head
        assert pending[0].payload == b"MSH" and pending[0].patient_key == "P3"
        assert await store.entry_status(1) is EntryStatus.DELIVERED
        (parked,) = await store.list_entries(EntryStatus.PARKED, None, None, 10)
        assert (parked.entry_id, parked.last_error) == (2, "AR")
        (trace,) = await store.trace("OLD2", None)
        assert [(event.kind, event.detail) for event in trace.entries[0].events] == [
            ("parked", "AR"),
            ("skip", "kept reason"),
        ]
        assert [state.name for state in await store.states()] == ["insi"]
        assert [record.message_id for record in await identity_records(store, 0, None)] == [
            1, 2, 3, 4,
        ]  # fmt: skip
        assert [d.outcome for d in await store.decisions(3)] == ["found"]  # not copied twice
        assert await StoredResultCache(store).load("k") == b"cached"
        assert (await store.accept(incoming("OLD3"))).duplicate
        (resent,) = await store.resend([2], "after the upgrade")
        assert resent.new_entry_id == 5  # ids go on after the old ones
    finally:
        await store.close()


async def test_a_store_newer_than_the_engine_is_refused(store_url: str) -> None:
    store = await open_store(store_url)
    await store.close()
    if isinstance(store, PostgresStore):
        connection = await store.connect()
        await connection.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
        await connection.close()
    else:
        with sqlite3.connect(store.path) as db:
            db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(StoreVersionError, match="newer than this engine"):
        await open_store(store_url)


async def test_migrate_creates_an_empty_postgresql_database(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, postgres_url)
    assert await asyncio.to_thread(main, ["store", "migrate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"created at schema version {latest_version()}" in out
    assert "password" not in out and "options" not in out  # the URL shown without extras


async def test_engines_opening_a_new_database_together_create_it_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(open_store(postgres_url) for _ in range(3)))
    for store in stores:
        await store.close()
    connection = await stores[0].connect()  # type: ignore[union-attr]
    cursor = await connection.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in await cursor.fetchall()] == list(range(1, latest_version() + 1))
    await connection.close()


async def test_migrate_refuses_a_missing_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for(tmp_path, f"sqlite:///{tmp_path / 'absent.db'}")
    assert await asyncio.to_thread(main, ["store", "migrate", "--config", str(config)]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not (tmp_path / "absent.db").exists()


# What the first versioned release's migrations (versions 1 and 2) did not create.
FIRST_RELEASE_LACKS = (
    "step_decisions",
    "delivery_failures",
    "audit",
    "metric_counters",
    "health",
    "engine_state",
)


async def test_a_store_of_the_first_versioned_release_gains_what_it_lacked(
    store_url: str,
) -> None:
    """A store left at version 2 by the first versioned release is refused until migrated,
    then has every table, keeps its rows and works; on SQLite its identity outcomes become
    the messages' decisions, as for older files."""
    extensions = registry().store_extensions()
    store = await open_store(store_url, extensions=extensions)
    message_id = (await store.accept(incoming("V2"))).message_id
    await store.route_messages(
        [
            RoutingResult(
                message_id, [NewEntry("down", None, None)], [enriched("several_found", detail="02")]
            )
        ]
    )
    await _as_the_first_versioned_release_left_it(store)
    await store.close()
    with pytest.raises(StoreVersionError):
        await open_store(store_url, extensions=extensions)
    applied = await migrate(store_url, extensions=extensions)
    assert (applied.before, applied.after) == (2, latest_version())
    store = await open_store(store_url, extensions=extensions)
    try:
        decisions = [(d.step, d.outcome, d.detail) for d in await store.decisions(message_id)]
        if not isinstance(store, PostgresStore):
            assert decisions == [("ins_enrich", "several_found", "02")]
        (entry,) = await store.pending_entries("adt", "down", 0, 10)
        assert entry.message_id == message_id
        later = (await store.accept(incoming("V3"))).message_id
        await store.route_messages(
            [RoutingResult(later, [NewEntry("down", None, None)], [enriched("added")])]
        )
        assert [d.outcome for d in await store.decisions(later)] == ["added"]
    finally:
        await store.close()


async def _as_the_first_versioned_release_left_it(store: OpenStore) -> None:
    statements = [f"DROP TABLE {table}" for table in FIRST_RELEASE_LACKS]
    statements += [
        f"DROP INDEX {index}"
        for index in (
            "messages_dropped",
            "messages_control_id",
            "operator_actions_entry",
            "messages_reprocess_of",
        )
    ]
    statements += [
        f"ALTER TABLE messages DROP COLUMN {c}" for c in ("reprocess_of", "reprocess_to")
    ]
    statements.append("DELETE FROM schema_migrations WHERE version > 2")
    for statement in statements:
        await store.execute(statement)
