"""The SQLite statements behind what the console and the metrics read and keep: message
search and detail, the audit trail, saved counters. Each function is a job run on one of the
store's connections (`SqliteStore._read` or `_write`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from engine.store.base import (
    AuditEntry,
    EntryHistory,
    EntryStatus,
    MessageDetail,
    MessageQuery,
    MessageSummary,
)

_SUMMARY = """
    SELECT m.id, m.received_at, m.route, m.control_id, m.message_type, m.size, m.status, m.ack,
        (SELECT group_concat(o.destination || char(9) || o.status, char(10))
         FROM (SELECT destination, status FROM outbox WHERE message_id = m.id ORDER BY id) o),
        (SELECT group_concat(d.outcome, char(10))
         FROM (SELECT outcome FROM step_decisions WHERE message_id = m.id ORDER BY id) d)
    FROM messages m
"""


def message_summary(row: tuple[Any, ...]) -> MessageSummary:
    deliveries = tuple(
        (destination, EntryStatus(status))
        for destination, status in (line.split("\t") for line in (row[8] or "").splitlines())
    )
    outcomes = tuple((row[9] or "").splitlines())
    return MessageSummary(*row[:7], bytes(row[7]), deliveries, outcomes)  # type: ignore[call-arg]


def find_messages(query: MessageQuery, connection: sqlite3.Connection) -> list[MessageSummary]:
    rows = connection.execute(
        _SUMMARY  # noqa: S608 - constant SQL
        + """WHERE (:control_id IS NULL OR m.control_id = :control_id)
               AND (:route IS NULL OR m.route = :route)
               AND (:since IS NULL OR m.received_at >= :since)
               AND (:until IS NULL OR m.received_at < :until)
               AND (:before IS NULL OR m.id < :before)
               AND (:status IS NULL OR EXISTS (
                    SELECT 1 FROM outbox o WHERE o.message_id = m.id AND o.status = :status))
               AND (:outcome IS NULL OR EXISTS (
                    SELECT 1 FROM step_decisions d
                    WHERE d.message_id = m.id AND d.outcome = :outcome))
             ORDER BY m.id DESC LIMIT :limit""",
        {
            "control_id": query.control_id,
            "route": query.route,
            "since": query.since,
            "until": query.until,
            "before": query.before_id,
            "status": query.status.value if query.status else None,
            "outcome": query.outcome,
            "limit": query.limit,
        },
    ).fetchall()
    return [message_summary(row) for row in rows]


def message_detail(message_id: int, connection: sqlite3.Connection) -> MessageDetail | None:
    """The message and its entries; the store adds their traces (`_entry_traces`)."""
    row = connection.execute(_SUMMARY + "WHERE m.id = ?", (message_id,)).fetchone()
    if row is None:
        return None
    peer, application, facility, raw = connection.execute(
        "SELECT peer, sending_application, sending_facility, raw FROM messages WHERE id = ?",
        (message_id,),
    ).fetchone()
    rows = connection.execute(
        """SELECT id, destination, status, attempts, last_error, last_ack_code, updated_at,
               delivered_at, resend_of, coalesce(payload, ?)
           FROM outbox WHERE message_id = ? ORDER BY id""",
        (raw, message_id),
    ).fetchall()
    entries = tuple(
        EntryHistory(*row[:2], EntryStatus(row[2]), *row[3:9], bytes(row[9]))  # type: ignore[call-arg]
        for row in rows
    )
    return MessageDetail(message_summary(row), peer, application, facility, bytes(raw), entries)


def record_audit(entry: AuditEntry, connection: sqlite3.Connection) -> None:
    connection.execute(
        "INSERT INTO audit (at, user, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (entry.at, entry.user, entry.action, entry.target, entry.detail),
    )


def audit_entries(
    limit: int, before_id: int | None, connection: sqlite3.Connection
) -> list[AuditEntry]:
    rows = connection.execute(
        """SELECT at, user, action, target, detail, id FROM audit
           WHERE (:before IS NULL OR id < :before) ORDER BY id DESC LIMIT :limit""",
        {"before": before_id, "limit": limit},
    ).fetchall()
    return [AuditEntry(*row) for row in rows]


def save_counters(values: list[tuple[str, str, float]], connection: sqlite3.Connection) -> None:
    connection.execute("DELETE FROM metric_counters")
    connection.executemany(
        "INSERT INTO metric_counters (name, labels, value) VALUES (?, ?, ?)", values
    )


def load_counters(connection: sqlite3.Connection) -> list[tuple[str, str, float]]:
    return connection.execute("SELECT name, labels, value FROM metric_counters").fetchall()
