"""A store file written by the version before route steps had a registry keeps its rows:
once `ins-engine store migrate` has run, its messages, queues, identity outcomes and INSi
cache are read as they are, and the outcomes it recorded have become the messages' step
decisions, once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.enrich.store import IdentityTables, StoredResultCache, identity_records
from engine.store.backends import migrate
from engine.store.base import EntryStatus
from engine.store.migrations import StoreVersionError
from engine.store.migrations.sqlite import LATEST
from engine.store.sqlite import SqliteStore

# The schema as the earlier version created it (engine/store/schema.py of that version).
EARLIER_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    route TEXT NOT NULL,
    peer TEXT NOT NULL,
    sending_application TEXT NOT NULL,
    sending_facility TEXT NOT NULL,
    control_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    content_hash BLOB NOT NULL,
    size INTEGER NOT NULL,
    raw BLOB NOT NULL,
    ack BLOB NOT NULL,
    status TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_sender_key
    ON messages (route, sending_application, sending_facility, control_id);
CREATE INDEX IF NOT EXISTS messages_to_route ON messages (id) WHERE status = 'received';

CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    route TEXT NOT NULL,
    destination TEXT NOT NULL,
    payload BLOB,
    patient_key TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    last_ack_code TEXT,
    updated_at REAL NOT NULL,
    delivered_at REAL,
    resend_of INTEGER  -- the entry an operator resent as this one
);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (route, destination, status, id);
-- Open entries only, so `queue status` reads what is queued, not the whole history.
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (route, destination, status, id)
    WHERE status IN ('pending', 'parked');
CREATE INDEX IF NOT EXISTS outbox_message ON outbox (message_id);

CREATE TABLE IF NOT EXISTS identity_outcomes (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    recorded_at REAL NOT NULL,
    record TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS insi_cache (
    key TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS operator_actions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    entry_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""
RECORD = {"outcome": "several_found", "detail": "02", "local_id": "IPP7", "calls": 2}


def earlier_store(path: Path) -> None:
    """Two messages routed by the earlier version, one outcome each, one cached INSi answer."""
    with sqlite3.connect(path) as db:
        db.executescript(EARLIER_SCHEMA)
        for message_id, control_id in ((1, "OLD1"), (2, "OLD2")):
            db.execute(
                """INSERT INTO messages VALUES (?, 1700000000.0, 'adt', '127.0.0.1:1', 'PAS',
                   'HOSP', ?, 'ADT^A28', x'00', 3, x'4d5348', x'', 'routed')""",
                (message_id, control_id),
            )
            db.execute(
                """INSERT INTO outbox (message_id, route, destination, status, attempts,
                   next_attempt_at, updated_at) VALUES (?, 'adt', 'ehr', 'pending', 0, 0, 0)""",
                (message_id,),
            )
        db.execute(
            "INSERT INTO identity_outcomes VALUES (1, 1700000001.0, ?)", (json.dumps(RECORD),)
        )
        db.execute(
            "INSERT INTO identity_outcomes VALUES (2, 1700000002.0, ?)",
            (json.dumps({"outcome": "added", "detail": ""}),),
        )
        db.execute("INSERT INTO insi_cache VALUES ('k1', x'7b7d', 4102444800.0)")


async def test_an_earlier_store_keeps_its_rows_and_gains_the_decisions(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    earlier_store(path)
    with pytest.raises(StoreVersionError):  # until it is migrated
        await SqliteStore.open(str(path), [IdentityTables()])
    for _ in range(2):  # migrated twice: the decisions are copied once
        await migrate(f"sqlite:///{path}", extensions=[IdentityTables()])
        store = await SqliteStore.open(str(path), [IdentityTables()])
        try:
            records = await identity_records(store, 0.0, None)
            assert [(r.control_id, r.record["outcome"]) for r in records] == [
                ("OLD1", "several_found"),
                ("OLD2", "added"),
            ]
            assert records[0].record == RECORD
            assert await StoredResultCache(store).load("k1") == b"{}"
            entries = await store.list_entries(EntryStatus.PENDING, None, None, 10)
            assert [entry.control_id for entry in entries] == ["OLD1", "OLD2"]
            decisions = await store.decisions(1)
            assert [(d.step, d.kind, d.outcome, d.detail) for d in decisions] == [
                ("ins_enrich", "ins_enrich", "several_found", "02")
            ]
            assert [d.outcome for d in await store.decisions(2)] == ["added"]
        finally:
            await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT max(version) FROM schema_migrations").fetchone() == (LATEST,)


async def test_a_new_store_starts_at_the_current_version(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"), [IdentityTables()])
    await store.close()
    with sqlite3.connect(tmp_path / "engine.db") as db:
        assert db.execute("SELECT max(version) FROM schema_migrations").fetchone() == (LATEST,)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"messages", "outbox", "step_decisions", "identity_outcomes", "insi_cache"} <= tables
