"""The shared store: PostgreSQL, for several engines on one database.

The same behaviour as the SQLite store, in SQL of PostgreSQL's dialect; connections, group
commits and the order lock that keeps ids in commit order are `engine.store.pg_connections`'.
Leases use the database's clock, so engines on several machines need no synchronised clocks
to agree on who holds what, and what one engine commits is announced to the others on a
LISTEN/NOTIFY channel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg

from engine.base.logs import get_logger
from engine.errors import LeaseLost, StoreError
from engine.store import pg_console
from engine.store.actions import (
    OPEN,
    becomes_resent,
    delivered_after_skip,
    resend_refusal,
    resent,
    skip_refusal,
    skipped,
)
from engine.store.base import (
    FINISHED,
    Accepted,
    ActionResult,
    AuditEntry,
    ComponentState,
    DroppedMessage,
    EngineState,
    EntryStatus,
    EntrySummary,
    EntryTrace,
    Incoming,
    Lease,
    LeaseClaim,
    LeaseState,
    MessageDetail,
    MessageQuery,
    MessageStatus,
    MessageSummary,
    MessageTrace,
    OutboxEntry,
    Parameters,
    Pruned,
    QueueStatus,
    RoutingResult,
    StoredMessage,
    TraceEvent,
    routed_status,
)
from engine.store.decision import Decision
from engine.store.extension import ExtensionSql, StoreExtension, dialect_sql
from engine.store.lanes import lane_hash
from engine.store.migrations import postgresql as migrations
from engine.store.pg_connections import NOTIFY_CHANNEL, Connection, Connections
from engine.store.rows import (
    OUTBOX_COLUMNS,
    SUMMARY_COLUMNS,
    TRACE_COLUMNS,
    entry_summary,
    message_trace,
    outbox_entry,
)
from engine.store.url import display_url

log = get_logger("engine.store")
WATCH_RETRY_S = 1.0
# No statement of a group is pipelined (`executemany`): a group holding the order lock must
# go idle between statements, where `idle_in_transaction_session_timeout` can end it should
# its engine freeze; inside a pipeline the server would wait for it without limit. Batches
# are single statements over arrays instead.
_DECISION_FIELDS = ("destination", "step", "kind", "outcome", "detail")

_FINISHED = [status.value for status in FINISHED]
_NOW = "extract(epoch FROM clock_timestamp())"


class PostgresStore:
    """`Store` on a PostgreSQL database; create with `await PostgresStore.open(url)`."""

    dialect = "postgresql"
    shared = True

    def __init__(
        self, url: str, password: str | None, extensions: Sequence[StoreExtension] = ()
    ) -> None:
        self.url = url
        self.name = display_url(url)
        self._db = Connections(url, password)
        self._extensions = [(ext, dialect_sql(ext, self.dialect)) for ext in extensions]
        self._recorders = {
            extension.kind: (extension, sql.record)
            for extension, sql in self._extensions
            if sql.record is not None
        }

    @property
    def extension_sql(self) -> list[ExtensionSql]:
        """The PostgreSQL statements of the step kinds' store extensions."""
        return [sql for _, sql in self._extensions]

    @property
    def commits(self) -> int:
        """Groups committed: lets a benchmark show the grouping."""
        return self._db.commits

    @classmethod
    async def open(
        cls, url: str, password: str | None = None, extensions: Sequence[StoreExtension] = ()
    ) -> PostgresStore:
        """Connect, create the schema in an empty database, refuse one of another version,
        create the tables of `extensions` that have none yet."""
        store = cls(url, password, extensions)
        connection = await store.connect()
        try:
            await migrations.prepare(connection, store.name, store.extension_sql)
        finally:
            await connection.close()
        await store._db.open()
        return store

    async def connect(self) -> Connection:
        """One connection of its own (migrations, notifications, copies)."""
        return await self._db.connect()

    async def close(self) -> None:
        """Finish every queued write, then close the connections."""
        await self._db.close()

    # -- what store extensions run (engine.store.extension) -----------------------------

    async def fetch(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        return await self._db.run(sql, parameters)

    async def execute(self, sql: str, parameters: Parameters = (), durable: bool = True) -> int:
        async def job(connection: Connection) -> int:
            return (await connection.execute(sql, parameters)).rowcount

        return await self._db.write(job, durable=durable)

    async def _record_decisions(
        self, connection: Connection, decisions: Iterable[tuple[int, Decision]], now: float
    ) -> None:
        """The generic decision rows, and each extension's rows, in the caller's transaction."""
        decided = list(decisions)
        if not decided:
            return
        rows: dict[str, list[Sequence[Any]]] = {}
        for message_id, decision in decided:
            recorder = self._recorders.get(decision.kind)
            if recorder is not None:
                row = recorder[0].row(message_id, now, decision)
                if row is not None:
                    rows.setdefault(recorder[1], []).append(row)
        await connection.execute(
            """INSERT INTO step_decisions (message_id, recorded_at, destination, step, kind,
                   outcome, detail)
               SELECT d.message_id, %s, d.destination, d.step, d.kind, d.outcome, d.detail
               FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
                           %s::text[]) WITH ORDINALITY
                   AS d (message_id, destination, step, kind, outcome, detail, position)
               ORDER BY d.position""",
            (
                now,
                [message_id for message_id, _ in decided],
                *([getattr(d, name) for _, d in decided] for name in _DECISION_FIELDS),
            ),
        )
        for statement, parameters in rows.items():
            for row in parameters:  # one round trip each: see _DECISION_FIELDS
                await connection.execute(statement, row)

    # -- inbox ------------------------------------------------------------------------

    async def accept(self, incoming: Incoming) -> Accepted:
        key = (
            incoming.route,
            incoming.sending_application,
            incoming.sending_facility,
            incoming.control_id,
        )

        async def job(connection: Connection) -> Accepted:
            # ON CONFLICT: the unique sender key decides between engines receiving the
            # same message at once; the later one waits for the first to commit.
            cursor = await connection.execute(
                """INSERT INTO messages (received_at, route, peer, sending_application,
                       sending_facility, control_id, message_type, content_hash, size, raw,
                       ack, status)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (route, sending_application, sending_facility, control_id)
                   DO NOTHING RETURNING id""",
                (
                    incoming.received_at,
                    incoming.route,
                    incoming.peer,
                    *key[1:],
                    incoming.message_type,
                    incoming.content_hash,
                    len(incoming.raw),
                    incoming.raw,
                    incoming.ack,
                    (MessageStatus.DROPPED if incoming.dropped else MessageStatus.RECEIVED).value,
                ),
            )
            row = await cursor.fetchone()
            if row is not None:
                decided = ((row[0], decision) for decision in incoming.decisions)
                await self._record_decisions(connection, decided, time.time())
                return Accepted(row[0], duplicate=False, same_content=True, ack=incoming.ack)
            cursor = await connection.execute(
                """SELECT id, content_hash, ack FROM messages WHERE route = %s
                   AND sending_application = %s AND sending_facility = %s AND control_id = %s""",
                key,
            )
            message_id, content_hash, ack = await cursor.fetchone()  # type: ignore[misc]
            return Accepted(
                message_id, True, bytes(content_hash) == incoming.content_hash, bytes(ack)
            )

        return await self._db.write(job, ordered=True, notify="received")

    async def received(self, after_id: int, limit: int) -> list[StoredMessage]:
        rows = await self._db.run(
            """SELECT id, route, received_at, control_id, message_type, raw FROM messages
               WHERE status = 'received' AND id > %s ORDER BY id LIMIT %s""",
            (after_id, limit),
        )
        return [StoredMessage(*row) for row in rows]

    async def route_messages(self, routed: list[RoutingResult]) -> None:
        now = time.time()

        async def job(connection: Connection) -> None:
            # First, and only from 'received': a message another engine's router routed
            # meanwhile (a lease changing hands) fails the whole batch instead of being
            # routed twice; its row lock also waits for that router's transaction.
            marked = await connection.execute(
                """UPDATE messages SET status = batch.status
                   FROM unnest(%s::bigint[], %s::text[]) AS batch (id, status)
                   WHERE messages.id = batch.id AND messages.status = 'received'""",
                (
                    [result.message_id for result in routed],
                    [routed_status(result).value for result in routed],
                ),
            )
            if marked.rowcount != len(routed):
                raise StoreError("messages already routed (by another engine)")
            entries = [(result.message_id, entry) for result in routed for entry in result.entries]
            # One statement for the whole batch; rows are inserted, and so get their ids,
            # in the batch's order.
            await connection.execute(
                """INSERT INTO outbox (message_id, route, destination, payload, patient_key,
                       lane_hash, status, attempts, next_attempt_at, updated_at)
                   SELECT m.id, m.route, e.destination, e.payload, e.patient_key, e.lane_hash,
                       'pending', 0, 0, %s
                   FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::text[], %s::bigint[])
                       WITH ORDINALITY AS e (message_id, destination, payload, patient_key,
                                            lane_hash, position)
                   JOIN messages m ON m.id = e.message_id
                   ORDER BY e.position""",
                (
                    now,
                    [message_id for message_id, _ in entries],
                    [entry.destination for _, entry in entries],
                    [entry.payload for _, entry in entries],
                    [entry.patient_key for _, entry in entries],
                    [lane_hash(entry.patient_key) for _, entry in entries],
                ),
            )
            await self._record_decisions(
                connection,
                ((result.message_id, d) for result in routed for d in result.decisions),
                now,
            )

        # Not durable: after a database crash the messages are still 'received' and are
        # routed again. One job, so the batch is routed all or none.
        await self._db.write(job, durable=False, ordered=True, notify="routed")

    async def decisions(self, message_id: int) -> list[Decision]:
        rows = await self._db.run(
            """SELECT step, kind, outcome, detail, destination FROM step_decisions
               WHERE message_id = %s ORDER BY id""",
            (message_id,),
        )
        return [Decision(*row) for row in rows]

    async def dropped_messages(self, route: str | None, limit: int) -> list[DroppedMessage]:
        rows = await self._db.run(
            """SELECT m.id, m.route, m.control_id, m.message_type, m.received_at,
                   coalesce(d.step, ''), coalesce(d.outcome, ''), coalesce(d.detail, '')
               FROM messages m LEFT JOIN step_decisions d ON d.id = (
                   SELECT max(id) FROM step_decisions WHERE message_id = m.id)
               WHERE m.status = 'dropped' AND (%(route)s::text IS NULL OR m.route = %(route)s)
               ORDER BY m.id DESC LIMIT %(limit)s""",
            {"route": route, "limit": limit},
        )
        return [DroppedMessage(*row) for row in rows]

    # -- outbox -----------------------------------------------------------------------

    async def pending_entries(
        self,
        route: str,
        destination: str,
        after_entry_id: int,
        limit: int,
        lane: int = 0,
        lanes: int = 1,
    ) -> list[OutboxEntry]:
        lane_filter = "AND o.lane_hash %% %s = %s" if lanes > 1 else ""
        lane_values = (lanes, lane) if lanes > 1 else ()
        rows = await self._db.run(
            f"""SELECT {OUTBOX_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
                WHERE o.route = %s AND o.destination = %s AND o.status = 'pending'
                  AND o.id > %s {lane_filter} ORDER BY o.id LIMIT %s""",  # noqa: S608 - constant SQL
            (route, destination, after_entry_id, *lane_values, limit),
        )
        return [outbox_entry(row) for row in rows]

    async def mark_delivered(
        self, entry_id: int, ack_code: str, fence: Lease | None = None
    ) -> bool:
        now = time.time()

        async def job(connection: Connection) -> bool:
            marked = await fenced_update(
                connection,
                """UPDATE outbox SET status = 'delivered', delivered_at = %(now)s,
                       updated_at = %(now)s, attempts = attempts + 1, last_ack_code = %(ack)s
                   WHERE id = %(id)s AND status = 'pending'""",
                {"now": now, "ack": ack_code or None, "id": entry_id},
                fence,
            )
            if marked:
                return True
            # An operator skipped it while the send was in flight: the skip stands (nothing
            # more is sent), and the audit says the receiver got it anyway.
            if await _status_of(connection, entry_id) is EntryStatus.SKIPPED:
                await _record_action(connection, now, entry_id, *delivered_after_skip(ack_code))
            return False

        # Not durable: lost in a database crash, the message is sent again (at-least-once).
        return await self._db.write(job, durable=False)

    async def record_failure(
        self,
        entry_id: int,
        error: str,
        next_attempt_at: float,
        park: bool,
        fence: Lease | None = None,
    ) -> None:
        now = time.time()
        status = EntryStatus.PARKED if park else EntryStatus.PENDING

        async def job(connection: Connection) -> None:
            await fenced_update(
                connection,
                """UPDATE outbox SET status = %(status)s, attempts = attempts + 1,
                       last_error = %(error)s, next_attempt_at = %(due)s, updated_at = %(now)s
                   WHERE id = %(id)s AND status = 'pending'""",
                {
                    "status": status.value,
                    "error": error[:500],
                    "due": next_attempt_at,
                    "now": now,
                    "id": entry_id,
                },
                fence,
            )
            await connection.execute(
                """INSERT INTO delivery_failures (entry_id, at, error, parked)
                   VALUES (%s, %s, %s, %s)""",
                (entry_id, now, error[:500], park),
            )

        await self._db.write(job, durable=False)

    async def entry_status(self, entry_id: int) -> EntryStatus | None:
        rows = await self._db.run("SELECT status FROM outbox WHERE id = %s", (entry_id,))
        return EntryStatus(rows[0][0]) if rows else None

    # -- queue operations ---------------------------------------------------------------

    async def queue_status(self) -> list[QueueStatus]:
        rows = await self._db.run(
            """SELECT q.route, q.destination, q.pending, q.parked, m.received_at,
                   q.head_attempts, (
                       SELECT last_error FROM outbox e WHERE e.route = q.route
                         AND e.destination = q.destination
                         AND e.status IN ('pending', 'parked') AND e.last_error IS NOT NULL
                       ORDER BY e.updated_at DESC LIMIT 1)
               FROM (SELECT route, destination,
                         count(*) FILTER (WHERE status = 'pending') AS pending,
                         count(*) FILTER (WHERE status = 'parked') AS parked,
                         min(id) FILTER (WHERE status = 'pending') AS head,
                         coalesce(max(attempts) FILTER (WHERE status = 'pending'), 0)
                             AS head_attempts
                     FROM outbox WHERE status IN ('pending', 'parked')
                     GROUP BY route, destination) q
               LEFT JOIN outbox h ON h.id = q.head
               LEFT JOIN messages m ON m.id = h.message_id
               ORDER BY q.route, q.destination"""
        )
        return [QueueStatus(*row) for row in rows]

    async def list_entries(
        self, status: EntryStatus, route: str | None, destination: str | None, limit: int
    ) -> list[EntrySummary]:
        order = "ASC" if status in OPEN else "DESC"
        rows = await self._db.run(
            f"""SELECT {SUMMARY_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
                WHERE o.status = %(status)s
                  AND (%(route)s::text IS NULL OR o.route = %(route)s)
                  AND (%(destination)s::text IS NULL OR o.destination = %(destination)s)
                ORDER BY o.id {order} LIMIT %(limit)s""",  # noqa: S608 - constant SQL
            {"status": status.value, "route": route, "destination": destination, "limit": limit},
        )
        return [entry_summary(row) for row in rows]

    async def entry_ids(self, status: EntryStatus, route: str, destination: str) -> list[int]:
        rows = await self._db.run(
            """SELECT id FROM outbox WHERE route = %s AND destination = %s AND status = %s
               ORDER BY id""",
            (route, destination, status.value),
        )
        return [row[0] for row in rows]

    async def trace(self, control_id: str, route: str | None) -> list[MessageTrace]:
        messages = await self._db.run(
            f"""SELECT {TRACE_COLUMNS} FROM messages WHERE control_id = %(control_id)s
                 AND (%(route)s::text IS NULL OR route = %(route)s)
               ORDER BY id""",  # noqa: S608 - constant SQL
            {"control_id": control_id, "route": route},
        )
        ids = [row[0] for row in messages]
        decisions = await self._db.run(
            """SELECT message_id, step, kind, outcome, detail, destination FROM step_decisions
               WHERE message_id = ANY(%s) ORDER BY id""",
            (ids,),
        )
        traces = await self._entry_traces(ids)
        return [
            message_trace(
                row,
                [Decision(*d[1:]) for d in decisions if d[0] == row[0]],
                traces.get(row[0], []),
            )
            for row in messages
        ]

    async def _entry_traces(self, message_ids: list[int]) -> dict[int, list[EntryTrace]]:
        """Each message's entries with their failed attempts, operator actions and delivery,
        in time order (as the SQLite store gives them)."""
        entries = await self._db.run(
            """SELECT message_id, id, destination, status, attempts, resend_of, delivered_at,
                   last_ack_code
               FROM outbox WHERE message_id = ANY(%s) ORDER BY id""",
            (message_ids,),
        )
        events = await self._db.run(
            """SELECT entry_id, at, CASE WHEN parked THEN 'parked' ELSE 'failed' END, error,
                   0 AS source, id
               FROM delivery_failures WHERE entry_id = ANY(%(ids)s)
               UNION ALL
               SELECT entry_id, at, action, reason, 1, id
               FROM operator_actions WHERE entry_id = ANY(%(ids)s)
               ORDER BY source, id""",
            {"ids": [row[1] for row in entries]},
        )
        traces: dict[int, list[EntryTrace]] = {}
        for entry in entries:
            traces.setdefault(entry[0], []).append(_entry_trace(entry, events))
        return traces

    # -- what the console reads and keeps (statements in `pg_console`) -----------------

    async def find_messages(self, query: MessageQuery) -> list[MessageSummary]:
        return await pg_console.find_messages(self._db, query)

    async def message_detail(self, message_id: int) -> MessageDetail | None:
        detail = await pg_console.message_detail(self._db, message_id)
        if detail is None:
            return None
        traces = await self._entry_traces([message_id])
        return dataclasses.replace(detail, traces=tuple(traces.get(message_id, [])))

    async def record_audit(self, entry: AuditEntry) -> None:
        await pg_console.record_audit(self._db, entry)

    async def audit_entries(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        return await pg_console.audit_entries(self._db, limit, before_id)

    async def save_counters(self, values: list[tuple[str, str, float]]) -> None:
        await pg_console.save_counters(self._db, values)

    async def load_counters(self) -> list[tuple[str, str, float]]:
        return await pg_console.load_counters(self._db)

    async def check_writable(self) -> None:
        await pg_console.check_writable(self._db)

    async def resend(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        now = time.time()

        async def job(connection: Connection) -> list[ActionResult]:
            results = []
            for entry_id in entry_ids:
                status = await _status_of(connection, entry_id)
                copy = None
                if status is EntryStatus.RESENT:
                    cursor = await connection.execute(
                        "SELECT max(id) FROM outbox WHERE resend_of = %s", (entry_id,)
                    )
                    (copy,) = await cursor.fetchone()  # type: ignore[misc]
                refusal = resend_refusal(entry_id, status, copy)
                if refusal is not None:
                    results.append(refusal)
                    continue
                assert status is not None  # a missing entry is refused above
                cursor = await connection.execute(
                    """INSERT INTO outbox (message_id, route, destination, payload,
                           patient_key, lane_hash, status, attempts, next_attempt_at,
                           updated_at, resend_of)
                       SELECT message_id, route, destination, payload, patient_key, lane_hash,
                           'pending', 0, 0, %s, id FROM outbox WHERE id = %s RETURNING id""",
                    (now, entry_id),
                )
                (new_id,) = await cursor.fetchone()  # type: ignore[misc]
                if becomes_resent(status):
                    await _set_status(connection, entry_id, EntryStatus.RESENT, now)
                await _record_action(connection, now, entry_id, f"resend as {new_id}", reason)
                results.append(resent(entry_id, new_id))
            return results

        return await self._db.write(job, ordered=True, notify="routed")

    async def skip(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        now = time.time()

        async def job(connection: Connection) -> list[ActionResult]:
            results = []
            for entry_id in entry_ids:
                refusal = skip_refusal(entry_id, await _status_of(connection, entry_id))
                if refusal is not None:
                    results.append(refusal)
                    continue
                await _set_status(connection, entry_id, EntryStatus.SKIPPED, now)
                await _record_action(connection, now, entry_id, "skip", reason)
                results.append(skipped(entry_id))
            return results

        return await self._db.write(job)

    # -- state for other processes --------------------------------------------------------

    async def unrouted(self) -> dict[str, int]:
        rows = await self._db.run(
            "SELECT route, count(*) FROM messages WHERE status = 'received' GROUP BY route"
        )
        return {route: count for route, count in rows}

    async def put_state(self, name: str, payload: str) -> None:
        now = time.time()

        async def job(connection: Connection) -> None:
            await connection.execute(
                """INSERT INTO engine_state (name, updated_at, payload) VALUES (%s, %s, %s)
                   ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at,
                       payload = excluded.payload""",
                (name, now, payload),
            )

        await self._db.write(job, durable=False)  # the engine publishes it again as it changes

    async def states(self) -> list[ComponentState]:
        rows = await self._db.run(
            "SELECT name, updated_at, payload FROM engine_state ORDER BY name"
        )
        return [ComponentState(*row) for row in rows]

    # -- retention ----------------------------------------------------------------------

    async def prune(self, before: float, limit: int) -> Pruned:
        # The newest row of each table is kept, as in SQLite, so both backends prune alike.
        async def job(connection: Connection) -> Pruned:
            entries = await connection.execute(
                """DELETE FROM outbox WHERE id IN (
                      SELECT id FROM outbox WHERE status = ANY(%s) AND updated_at < %s
                        AND id < (SELECT max(id) FROM outbox) LIMIT %s)""",
                (_FINISHED, before, limit),
            )
            messages = await connection.execute(
                """DELETE FROM messages WHERE id IN (
                      SELECT id FROM messages m WHERE status IN ('routed', 'dropped')
                        AND received_at < %s
                        AND id < (SELECT max(id) FROM messages)
                        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id)
                      LIMIT %s)""",
                (before, limit),
            )
            now = time.time()
            expired = 0
            for _, sql in self._extensions:
                if sql.prune is not None:
                    expired += (await connection.execute(sql.prune, (now, limit))).rowcount
            return Pruned(entries.rowcount, messages.rowcount, expired)

        return await self._db.write(job, durable=False)

    # -- leases and engines (engine.coordination.leases) ----------------------------------------

    async def claim_lease(
        self, name: str, holder: str, lease_s: float, force: bool = False
    ) -> LeaseClaim:
        # One statement: insert, renew (same holder), or take over (expired or forced);
        # the token grows only when the holder changes. Committed on its own and durably,
        # not in a group that may wait for the order lock: a renewal a database crash could
        # lose would let another engine take the lease while this one still counts on it.
        rows = await self._db.run_for_leases(
            f"""INSERT INTO leases AS l (name, holder, token, since, renewed_at, expires_at)
                SELECT %(name)s, %(holder)s, 1, now, now, now + %(lease_s)s
                FROM (SELECT {_NOW} AS now) clock
                ON CONFLICT (name) DO UPDATE SET
                    holder = excluded.holder,
                    token = CASE WHEN l.holder = excluded.holder THEN l.token
                                 ELSE l.token + 1 END,
                    since = CASE WHEN l.holder = excluded.holder THEN l.since
                                 ELSE excluded.since END,
                    renewed_at = excluded.renewed_at,
                    expires_at = excluded.expires_at
                WHERE l.holder = excluded.holder OR l.expires_at <= excluded.renewed_at
                   OR %(force)s
                RETURNING token, since""",  # noqa: S608 - constant SQL
            {"name": name, "holder": holder, "lease_s": lease_s, "force": force},
        )
        if rows:
            token, since = rows[0]
            return LeaseClaim(Lease(name, holder, token, since), holder, lease_s)
        rows = await self._db.run_for_leases(
            f"SELECT holder, expires_at - {_NOW} FROM leases WHERE name = %s",  # noqa: S608
            (name,),
        )
        if not rows:  # released meanwhile: free at the next claim
            return LeaseClaim(None, "", 0.0)
        return LeaseClaim(None, rows[0][0], max(rows[0][1], 0.0))

    async def release_lease(self, lease: Lease) -> None:
        await self._db.run_for_leases(
            f"""WITH released AS (
                    UPDATE leases SET expires_at = {_NOW}
                    WHERE name = %s AND holder = %s AND token = %s RETURNING name)
                SELECT pg_notify(%s, 'lease') FROM released""",  # noqa: S608 - constant SQL
            (lease.name, lease.holder, lease.token, NOTIFY_CHANNEL),
        )

    async def leases(self) -> list[LeaseState]:
        rows = await self._db.run(
            "SELECT name, holder, since, renewed_at, expires_at FROM leases ORDER BY name"
        )
        return [LeaseState(*row) for row in rows]

    async def engine_seen(self, engine: EngineState) -> None:
        await self._db.run_for_leases(
            f"""INSERT INTO engines (id, host, pid, started_at, seen_at)
                VALUES (%s, %s, %s, %s, {_NOW})
                ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
                RETURNING id""",  # noqa: S608 - constant SQL
            (engine.engine_id, engine.host, engine.pid, engine.started_at),
        )

    async def engine_stopped(self, engine_id: str) -> None:
        await self._db.run_for_leases(
            "DELETE FROM engines WHERE id = %s RETURNING id", (engine_id,)
        )

    async def watch(self, on_change: Callable[[str], None]) -> None:
        """LISTEN on a connection of its own; what any engine commits wakes this one's
        router ("received") and delivery workers ("routed") at once, instead of at their
        next poll, and a lease given up ("lease") is claimed at once. Reconnects after a
        failure, waking everything (a notice may have been lost)."""
        while True:
            try:
                connection = await self.connect()
                async with connection:
                    await connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    for what in ("received", "routed", "lease"):
                        on_change(what)
                    async for notice in connection.notifies():
                        on_change(notice.payload)
            except (StoreError, psycopg.Error) as error:
                log.warning("store notifications interrupted", error=type(error).__name__)
            await asyncio.sleep(WATCH_RETRY_S)

    async def engines(self) -> list[EngineState]:
        rows = await self._db.run(
            "SELECT id, host, pid, started_at, seen_at FROM engines ORDER BY started_at, id"
        )
        return [EngineState(*row) for row in rows]


async def fenced_update(
    connection: Connection, sql: str, parameters: dict[str, Any], fence: Lease | None
) -> int:
    """Run an entry update; with a fence, only while the lease has not changed holder.
    The rows it changed. The lease row is share-locked until this transaction commits: a
    claim by another engine waits for it, so a write never lands after a takeover (and one
    committed just before is seen: the token no longer matches)."""
    if fence is None:
        return (await connection.execute(sql, parameters)).rowcount
    cursor = await connection.execute(
        f"""{sql} AND EXISTS (SELECT 1 FROM leases
                              WHERE name = %(lease)s AND token = %(token)s FOR SHARE)
            RETURNING id""",  # noqa: S608 - constant SQL
        {**parameters, "lease": fence.name, "token": fence.token},
    )
    if cursor.rowcount == 0:
        rows = await (
            await connection.execute("SELECT token FROM leases WHERE name = %s", (fence.name,))
        ).fetchall()
        if not rows or rows[0][0] != fence.token:
            raise LeaseLost(f"lease {fence.name} is no longer held by this engine")
    return cursor.rowcount


async def _status_of(connection: Connection, entry_id: int) -> EntryStatus | None:
    """An entry's status, locked until the operator's action commits: a delivery mark
    committed meanwhile by a worker is then seen, not overwritten."""
    cursor = await connection.execute(
        "SELECT status FROM outbox WHERE id = %s FOR UPDATE", (entry_id,)
    )
    row = await cursor.fetchone()
    return None if row is None else EntryStatus(row[0])


async def _set_status(
    connection: Connection, entry_id: int, status: EntryStatus, now: float
) -> None:
    await connection.execute(
        "UPDATE outbox SET status = %s, updated_at = %s WHERE id = %s",
        (status.value, now, entry_id),
    )


async def _record_action(
    connection: Connection, now: float, entry_id: int, action: str, reason: str
) -> None:
    await connection.execute(
        "INSERT INTO operator_actions (at, entry_id, action, reason) VALUES (%s, %s, %s, %s)",
        (now, entry_id, action, reason),
    )


def _entry_trace(entry: tuple[Any, ...], events: list[Any]) -> EntryTrace:
    """One entry of a trace: its failed attempts, operator actions and delivery, in time
    order (as the SQLite store gives them)."""
    _, entry_id, destination, status, attempts, resend_of, delivered_at, ack_code = entry
    found = [
        TraceEvent(at, kind, detail) for owner, at, kind, detail, *_ in events if owner == entry_id
    ]
    if delivered_at is not None:
        found.append(TraceEvent(delivered_at, "delivered", ack_code or ""))
    found.sort(key=lambda event: event.at)
    return EntryTrace(entry_id, destination, EntryStatus(status), attempts, resend_of, found)
