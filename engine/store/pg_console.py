"""The PostgreSQL statements behind what the console and the metrics read and keep, as
`sqlite_console` holds SQLite's: message search and detail, the audit trail, saved counters,
the readiness write. The summaries come back in the rows `sqlite_console.message_summary`
reads, so both backends list a message alike.

Saved counters are kept per host: each engine sharing the store counts its own, and finds
its own again when it restarts.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from engine.store.base import (
    AuditEntry,
    EntryHistory,
    EntryStatus,
    MessageDetail,
    MessageQuery,
    MessageSummary,
)
from engine.store.pg_connections import Connection, Connections
from engine.store.sqlite_console import message_summary

_SUMMARY = """
    SELECT m.id, m.received_at, m.route, m.control_id, m.message_type, m.size, m.status, m.ack,
        (SELECT string_agg(o.destination || chr(9) || o.status, chr(10) ORDER BY o.id)
         FROM outbox o WHERE o.message_id = m.id),
        (SELECT string_agg(d.outcome, chr(10) ORDER BY d.id)
         FROM step_decisions d WHERE d.message_id = m.id)
    FROM messages m
"""


async def find_messages(db: Connections, query: MessageQuery) -> list[MessageSummary]:
    rows = await db.run(
        _SUMMARY  # noqa: S608 - constant SQL
        + """WHERE (%(control_id)s::text IS NULL OR m.control_id = %(control_id)s)
               AND (%(route)s::text IS NULL OR m.route = %(route)s)
               AND (%(since)s::float8 IS NULL OR m.received_at >= %(since)s)
               AND (%(until)s::float8 IS NULL OR m.received_at < %(until)s)
               AND (%(before)s::bigint IS NULL OR m.id < %(before)s)
               AND (%(status)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM outbox o WHERE o.message_id = m.id AND o.status = %(status)s))
               AND (%(outcome)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM step_decisions d
                    WHERE d.message_id = m.id AND d.outcome = %(outcome)s))
             ORDER BY m.id DESC LIMIT %(limit)s""",
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
    )
    return [message_summary(row) for row in rows]


async def message_detail(db: Connections, message_id: int) -> MessageDetail | None:
    """The message and its entries; the store adds their traces."""
    rows = await db.run(_SUMMARY + "WHERE m.id = %s", (message_id,))
    if not rows:
        return None
    ((peer, application, facility, raw),) = await db.run(
        "SELECT peer, sending_application, sending_facility, raw FROM messages WHERE id = %s",
        (message_id,),
    )
    entries = await db.run(
        """SELECT id, destination, status, attempts, last_error, last_ack_code, updated_at,
               delivered_at, resend_of, coalesce(payload, %s)
           FROM outbox WHERE message_id = %s ORDER BY id""",
        (raw, message_id),
    )
    return MessageDetail(
        message_summary(rows[0]),
        peer,
        application,
        facility,
        bytes(raw),
        tuple(
            EntryHistory(*row[:2], EntryStatus(row[2]), *row[3:9], bytes(row[9]))  # type: ignore[call-arg]
            for row in entries
        ),
    )


async def record_audit(db: Connections, entry: AuditEntry) -> None:
    async def job(connection: Connection) -> None:
        await connection.execute(
            """INSERT INTO audit (at, "user", action, target, detail)
               VALUES (%s, %s, %s, %s, %s)""",
            (entry.at, entry.user, entry.action, entry.target, entry.detail),
        )

    await db.write(job)


async def audit_entries(db: Connections, limit: int, before_id: int | None) -> list[AuditEntry]:
    rows = await db.run(
        """SELECT at, "user", action, target, detail, id FROM audit
           WHERE (%(before)s::bigint IS NULL OR id < %(before)s)
           ORDER BY id DESC LIMIT %(limit)s""",
        {"before": before_id, "limit": limit},
    )
    return [AuditEntry(*row) for row in rows]


async def save_counters(db: Connections, values: list[tuple[str, str, float]]) -> None:
    host = socket.gethostname()

    async def job(connection: Connection) -> None:
        await connection.execute("DELETE FROM metric_counters WHERE host = %s", (host,))
        await connection.execute(
            """INSERT INTO metric_counters (host, name, labels, value)
               SELECT %s, name, labels, value
               FROM unnest(%s::text[], %s::text[], %s::float8[]) AS c (name, labels, value)""",
            (host, *_columns(values)),
        )

    # Not durable: a database crash costs the counts since the previous save.
    await db.write(job, durable=False)


async def load_counters(db: Connections) -> list[tuple[str, str, float]]:
    rows = await db.run(
        "SELECT name, labels, value FROM metric_counters WHERE host = %s",
        (socket.gethostname(),),
    )
    return [tuple(row) for row in rows]


async def check_writable(db: Connections) -> None:
    async def job(connection: Connection) -> None:
        await connection.execute(
            """INSERT INTO health (id, checked_at) VALUES (1, %s)
               ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at""",
            (time.time(),),
        )

    # Not durable: a readiness probe every few seconds must not cost a sync each.
    await db.write(job, durable=False)


def _columns(values: list[tuple[str, str, float]]) -> tuple[list[Any], list[Any], list[Any]]:
    return (
        [name for name, _, _ in values],
        [labels for _, labels, _ in values],
        [value for _, _, value in values],
    )
