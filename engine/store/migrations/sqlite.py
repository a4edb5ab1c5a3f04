"""The SQLite schema, as numbered migrations. Row ids give the order: messages by arrival,
outbox entries by routing (an entry's id is its position in its queue).

Version 1 is the schema of the release before versioned migrations. A file that release
(or an earlier one) wrote has no `schema_migrations` table: it counts as version 0, and
migration 1 adapts it in place: `CREATE ... IF NOT EXISTS` keeps its tables as they are and
adds the tables, indexes and columns later releases added; a file from before step
decisions had their own table gets the decisions its step extensions kept (the identity
outcomes) copied into it. Migration 3 does the same for a file of the first versioned
release (version 2), whose migration 1 made fewer tables. No row moves. Each migration runs
in one transaction with the row that records it: a failed one leaves the file as it was.

Step extensions (`engine.store.extension`) create their own tables when a store opens,
`IF NOT EXISTS`, so that a kind installed later finds its tables without a migration.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.store.extension import ExtensionSql
from engine.store.migrations import Applied, check_version

BASELINE = """
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

-- Every step's decision about a message, in the order taken (destination '' = a route step).
CREATE TABLE IF NOT EXISTS step_decisions (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recorded_at REAL NOT NULL,
    destination TEXT NOT NULL,
    step TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS step_decisions_message ON step_decisions (message_id);
CREATE INDEX IF NOT EXISTS messages_dropped ON messages (route, id) WHERE status = 'dropped';

-- Who did or saw what in the console (kept beyond message retention).
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- Metric counters saved at intervals and at shutdown, restored at start.
CREATE TABLE IF NOT EXISTS metric_counters (
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (name, labels)
);

-- One row, rewritten by each readiness check: proof that the store still takes writes.
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS operator_actions (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    entry_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS operator_actions_entry ON operator_actions (entry_id);

-- Failed delivery attempts, for `queue list --control-id` (a delivery's success is in
-- outbox: delivered_at, last_ack_code), so the delivered path writes nothing more.
CREATE TABLE IF NOT EXISTS delivery_failures (
    id INTEGER PRIMARY KEY,
    entry_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    error TEXT NOT NULL,
    parked INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS delivery_failures_entry ON delivery_failures (entry_id);
-- `queue list --control-id`: one message among millions without a scan of their bytes.
CREATE INDEX IF NOT EXISTS messages_control_id ON messages (control_id);

-- What the running engine knows and another process shows (e.g. INSi's breaker for
-- `queue status`): one row per component, written when its state changes.
CREATE TABLE IF NOT EXISTS engine_state (
    name TEXT PRIMARY KEY,
    updated_at REAL NOT NULL,
    payload TEXT NOT NULL
);
"""

# Columns that releases before versioned migrations added to a table an older one created.
_BASELINE_COLUMNS = (("outbox", "resend_of", "INTEGER"),)

LEASES = """
-- Who does what among engines sharing a store: routing, each delivery lane, retention.
-- `token` grows at each change of holder, so a holder that lost its lease is fenced off.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL,
    since REAL NOT NULL,
    renewed_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
-- Every engine running on the store, with its last sign of life.
CREATE TABLE engines (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
"""


REPROCESS = """
-- A reprocessed copy names the message it copies, and the destinations chosen for it (a
-- comma-separated list; NULL: every destination that takes it).
ALTER TABLE messages ADD COLUMN reprocess_of INTEGER;
ALTER TABLE messages ADD COLUMN reprocess_to TEXT;
CREATE INDEX messages_reprocess_of ON messages (reprocess_of) WHERE reprocess_of IS NOT NULL;
"""


LOGIN_FAILURES = """
-- The console's login brake: wrong passwords per user name and client address, so that
-- every engine on the store counts them and `ins-engine user unlock` lifts a lockout.
CREATE TABLE IF NOT EXISTS login_failures (
    user TEXT NOT NULL,
    client TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (user, client, at);
CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
"""


SEARCH = """
-- The console's and `ins-engine messages`' search: an index for each filter (SQLite ends
-- each with the row id), so that a search among millions reads only what matches. The
-- columns patient_id, patient_name, birth_date (PID-3 of type PI, PID-5's family name
-- upper-cased without accents, PID-7's date) are added first, filled when a message is
-- stored.
CREATE INDEX IF NOT EXISTS messages_patient_id ON messages (patient_id);
CREATE INDEX IF NOT EXISTS messages_patient_name ON messages (patient_name);
CREATE INDEX IF NOT EXISTS messages_birth_date ON messages (birth_date);
CREATE INDEX IF NOT EXISTS messages_application ON messages (sending_application);
CREATE INDEX IF NOT EXISTS messages_facility ON messages (sending_facility);
CREATE INDEX IF NOT EXISTS messages_type ON messages (message_type);
CREATE INDEX IF NOT EXISTS messages_route ON messages (route);
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (status, destination, message_id);
CREATE INDEX IF NOT EXISTS step_decisions_outcome ON step_decisions (outcome, message_id);
"""


def _baseline(connection: sqlite3.Connection, extensions: Sequence[ExtensionSql]) -> None:
    legacy = _has_table(connection, "messages") and not _has_table(connection, "step_decisions")
    for statement in _statements(BASELINE):
        connection.execute(statement)
    _add_columns(connection, _BASELINE_COLUMNS)
    for extension in extensions:
        _create(connection, extension)
        if legacy and extension.legacy_decisions:
            connection.execute(extension.legacy_decisions)


def _leases(connection: sqlite3.Connection, extensions: Sequence[ExtensionSql]) -> None:
    for statement in _statements(LEASES):
        connection.execute(statement)


def _reprocess(connection: sqlite3.Connection, extensions: Sequence[ExtensionSql]) -> None:
    for statement in _statements(REPROCESS):
        connection.execute(statement)


def _login_failures(connection: sqlite3.Connection, extensions: Sequence[ExtensionSql]) -> None:
    for statement in _statements(LOGIN_FAILURES):
        connection.execute(statement)


_SEARCH_COLUMNS = tuple(
    ("messages", name, "TEXT NOT NULL DEFAULT ''")
    for name in ("patient_id", "patient_name", "birth_date")
)


def _search(connection: sqlite3.Connection, extensions: Sequence[ExtensionSql]) -> None:
    _add_columns(connection, _SEARCH_COLUMNS)
    for statement in _statements(SEARCH):
        connection.execute(statement)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    summary: str
    apply: Callable[[sqlite3.Connection, Sequence[ExtensionSql]], None]


MIGRATIONS = (
    Migration(1, "messages, outbox, decisions, audits, failures, state, counters", _baseline),
    Migration(2, "leases and engines (several engines, one store)", _leases),
    # The first versioned release's migration 1 made only messages, outbox, identity
    # outcomes, INSi cache and operator actions: its files (version 2) get the rest, and
    # their outcomes as decisions. The baseline again: it adds only what is missing.
    Migration(3, "decisions, audits, failures, state, counters (first versioned files)", _baseline),
    Migration(4, "reprocessed copies linked to their original", _reprocess),
    Migration(5, "the console's login brake, per user and client", _login_failures),
    Migration(6, "message search: patient columns and an index per filter", _search),
)
LATEST = MIGRATIONS[-1].version


def version(connection: sqlite3.Connection) -> int | None:
    """The file's schema version: None for a new (empty) file, 0 for one written before
    versioned migrations."""
    if _has_table(connection, "schema_migrations"):
        (found,) = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(found or 0)
    return 0 if _has_table(connection, "messages") else None


def migrate(connection: sqlite3.Connection, extensions: Sequence[ExtensionSql]) -> Applied:
    """Apply every migration above the file's version, each in its own transaction, on an
    autocommit connection."""
    before = version(connection)
    connection.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version INTEGER PRIMARY KEY, summary TEXT NOT NULL, applied_at REAL NOT NULL)"""
    )
    for migration in MIGRATIONS:
        if migration.version <= (before or 0):
            continue
        connection.execute("BEGIN IMMEDIATE")
        try:
            migration.apply(connection, extensions)
            connection.execute(
                "INSERT INTO schema_migrations (version, summary, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.summary, time.time()),
            )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    return Applied(before, version(connection) or 0)


def prepare(connection: sqlite3.Connection, name: str, extensions: Sequence[ExtensionSql]) -> None:
    """What opening a store does: create a new file at the latest version, refuse one of
    another version, create the tables of extensions that have none yet."""
    found = version(connection)
    if found is None:
        migrate(connection, extensions)
    else:
        check_version(name, found, LATEST)
    for extension in extensions:
        _create(connection, extension)


def _create(connection: sqlite3.Connection, extension: ExtensionSql) -> None:
    for statement in _statements(extension.schema):
        connection.execute(statement)


def _add_columns(connection: sqlite3.Connection, columns: Sequence[tuple[str, str, str]]) -> None:
    """Add each (table, column, type) the table lacks."""
    for table, column, kind in columns:
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _has_table(connection: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (name,)).fetchone() is not None


def _statements(script: str) -> list[str]:
    """A script's statements one by one (`executescript` would commit the transaction)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]
