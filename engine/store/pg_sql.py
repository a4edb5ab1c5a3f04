"""The PostgreSQL text of every statement the store's rules name (`engine.store.rules`).

Parameters are named (`%(name)s`), or positional (`%s`) in the statements the engine runs
for every message. A batch marked `Arrays` (positional) is sent as one statement over arrays, one
per parameter (the statement's own parameters after them), its rows inserted in the batch's
order; another batch, as one statement a row (`queries`). A group commit sends the statements
of its writes together, in rounds (`engine.store.pg_pipeline`). What differs from
SQLite's: `ON CONFLICT ... DO UPDATE`, `string_agg`, the lanes' hash kept in a column, row
locks where engines could race (a fenced write share-locks its lease; an operator's action
locks its entry), metric counters kept per host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, cast

from engine.store.base import Parameters
from engine.store.flows import Statement, text_of
from engine.store.rows import FINISHED_VALUES, OUTBOX_COLUMNS, SUMMARY_COLUMNS, TRACE_COLUMNS

_UNNEST = re.compile(r"unnest\(((?:%s::\w+\[\],?\s*)+)\)(\s+WITH ORDINALITY)?")


class Arrays(str):
    """A batch statement run once, over arrays of its rows' parameters (`unnest`). `one` is
    its text for a batch of one row, over a VALUES row of scalars instead: psycopg adapts a
    list far more slowly than a value (tens of microseconds a list), and most batches, one
    read's messages or one lane's marks, hold one row."""

    one: str

    def __new__(cls, text: str) -> Arrays:
        statement = super().__new__(cls, text)
        statement.one = _UNNEST.sub(_values_row, text)
        return statement


def _values_row(unnest: re.Match[str]) -> str:
    """`unnest(%s::T[], ...) [WITH ORDINALITY]` as one row `(VALUES (%s::T, ...[, 1]))`."""
    scalars = ", ".join(part.strip().removesuffix("[]") for part in unnest[1].split(","))
    return f"(VALUES ({scalars}{', 1' if unnest[2] else ''}))"


_SUMMARY = """
    SELECT m.id, m.received_at, m.route, m.control_id, m.message_type, m.size, m.status, m.ack,
        (SELECT string_agg(o.destination || chr(9) || o.status, chr(10) ORDER BY o.id)
         FROM outbox o WHERE o.message_id = m.id),
        (SELECT string_agg(d.outcome, chr(10) ORDER BY d.id)
         FROM step_decisions d WHERE d.message_id = m.id)
    FROM messages m
"""
_PENDING = f"""
    SELECT {OUTBOX_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
    WHERE o.route = %s AND o.destination = %s AND o.status = 'pending' AND o.id > %s"""  # noqa: S608 - constant SQL
_ENTRIES = f"""
    SELECT {SUMMARY_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
    WHERE o.status = %(status)s AND (%(route)s::text IS NULL OR o.route = %(route)s)
      AND (%(destination)s::text IS NULL OR o.destination = %(destination)s)"""  # noqa: S608 - constant SQL

# Share-locked until the fenced write commits: another engine's claim waits for it.
_FENCE = """ AND EXISTS (SELECT 1 FROM leases
                         WHERE name = %(lease)s AND token = %(token)s FOR SHARE)"""
_MARK_DELIVERED = """
    UPDATE outbox SET status = 'delivered', delivered_at = marks.now,
        updated_at = marks.now, attempts = attempts + 1, last_ack_code = marks.ack
    FROM unnest(%s::bigint[], %s::text[], %s::float8[]) AS marks (id, ack, now)
    WHERE outbox.id = marks.id AND outbox.status = 'pending'"""
_RECORD_FAILURE = """
    UPDATE outbox SET status = %(status)s, attempts = attempts + 1, last_error = %(error)s,
        next_attempt_at = %(due)s, updated_at = %(now)s
    WHERE id = %(id)s AND status = 'pending'"""


def _prefix(column: str, name: str = "") -> str:
    """The condition "`column` starts with the parameter `name`", over its index in
    code-point order: at or above it, below `NAME_end` (`engine.store.rules._after_prefix`)."""
    name = name or column
    return f'm.{column} COLLATE "C" >= %({name})s AND m.{column} COLLATE "C" < %({name}_end)s'


STATEMENTS: dict[str, str] = {
    # inbox; ON CONFLICT: the unique sender key decides between engines receiving the same
    # message at once, the later one waits for the first to commit.
    # The batch's new messages (`rules.accept_many`), their ids drawn in its order.
    "insert_messages": Arrays("""
        INSERT INTO messages (received_at, route, peer, sending_application, sending_facility,
            control_id, message_type, content_hash, size, raw, ack, status, patient_id,
            patient_name, birth_date)
        SELECT received_at, route, peer, sending_application, sending_facility, control_id,
            message_type, content_hash, size, raw, ack, status, patient_id, patient_name,
            birth_date
        FROM unnest(%s::float8[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                    %s::text[], %s::bytea[], %s::integer[], %s::bytea[], %s::bytea[],
                    %s::text[], %s::text[], %s::text[], %s::text[])
            WITH ORDINALITY AS m (received_at, route, peer, sending_application,
                sending_facility, control_id, message_type, content_hash, size, raw, ack,
                status, patient_id, patient_name, birth_date, position)
        ORDER BY m.position
        ON CONFLICT (route, sending_application, sending_facility, control_id) DO NOTHING
        RETURNING id, route, sending_application, sending_facility, control_id"""),
    "message_by_sender_key": """
        SELECT id, content_hash, ack FROM messages WHERE route = %s
        AND sending_application = %s AND sending_facility = %s AND control_id = %s""",
    "received": """
        SELECT id, route, received_at, control_id, message_type, raw, reprocess_to
        FROM messages
        WHERE status = 'received' AND id > %s ORDER BY id LIMIT %s""",
    # Its row locks also wait for another engine's router's transaction.
    "mark_routed": Arrays("""
        UPDATE messages SET status = batch.status
        FROM unnest(%s::bigint[], %s::text[]) AS batch (id, status)
        WHERE messages.id = batch.id AND messages.status = 'received'"""),
    "insert_entries": Arrays("""
        INSERT INTO outbox (message_id, route, destination, payload, patient_key, lane_hash,
            status, attempts, next_attempt_at, updated_at)
        SELECT m.id, m.route, e.destination, e.payload, e.patient_key, e.lane_hash,
            'pending', 0, 0, e.now
        FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::text[], %s::bigint[],
                    %s::float8[])
            WITH ORDINALITY AS e (message_id, destination, payload, patient_key, lane_hash,
                                  now, position)
        JOIN messages m ON m.id = e.message_id
        ORDER BY e.position"""),
    "insert_decisions": Arrays("""
        INSERT INTO step_decisions (message_id, recorded_at, destination, step, kind, outcome,
            detail)
        SELECT d.message_id, d.recorded_at, d.destination, d.step, d.kind, d.outcome, d.detail
        FROM unnest(%s::bigint[], %s::float8[], %s::text[], %s::text[], %s::text[],
                    %s::text[], %s::text[]) WITH ORDINALITY
            AS d (message_id, recorded_at, destination, step, kind, outcome, detail, position)
        ORDER BY d.position"""),
    # outbox
    "pending_entries": _PENDING + " ORDER BY o.id LIMIT %s",
    "pending_entries_of_lane": _PENDING + " AND o.lane_hash %% %s = %s ORDER BY o.id LIMIT %s",
    "lease_token": "SELECT token FROM leases WHERE name = %s",
    # (entry ids, ACK codes, nows); fenced, then the lease's name and token
    "mark_delivered_many": Arrays(_MARK_DELIVERED + " RETURNING outbox.id"),
    "mark_delivered_many_fenced": Arrays(
        _MARK_DELIVERED  # noqa: S608 - constant SQL
        + """ AND EXISTS (SELECT 1 FROM leases WHERE name = %s AND token = %s FOR SHARE)
        RETURNING outbox.id"""
    ),
    "record_failure": _RECORD_FAILURE,
    "record_failure_fenced": _RECORD_FAILURE + _FENCE,
    "insert_failure": """
        INSERT INTO delivery_failures (entry_id, at, error, parked)
        VALUES (%(entry_id)s, %(at)s, %(error)s, %(parked)s)""",
    "entry_status": "SELECT status FROM outbox WHERE id = %(id)s",
    # operator
    "queue_status": """
        SELECT q.route, q.destination, q.pending, q.parked, m.received_at, q.head_attempts, (
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
        ORDER BY q.route, q.destination""",
    "entries_oldest_first": _ENTRIES + " ORDER BY o.id ASC LIMIT %(limit)s",
    "entries_newest_first": _ENTRIES + " ORDER BY o.id DESC LIMIT %(limit)s",
    "entry_ids": """
        SELECT id FROM outbox WHERE route = %(route)s AND destination = %(destination)s
            AND status = %(status)s
        ORDER BY id""",
    "messages_by_control_id": f"""
        SELECT {TRACE_COLUMNS} FROM messages WHERE control_id = %(control_id)s
            AND (%(route)s::text IS NULL OR route = %(route)s)
        ORDER BY id""",  # noqa: S608 - constant SQL
    "entries_of_message": """
        SELECT id, destination, status, attempts, resend_of, delivered_at, last_ack_code
        FROM outbox WHERE message_id = %(message_id)s ORDER BY id""",
    "failures_of_entry": """
        SELECT at, error, parked FROM delivery_failures WHERE entry_id = %(entry_id)s
        ORDER BY id""",
    "actions_of_entry": """
        SELECT at, action, reason FROM operator_actions WHERE entry_id = %(entry_id)s
        ORDER BY id""",
    # Locked until the action commits: a worker's delivery mark meanwhile is seen.
    "entry_status_for_update": "SELECT status FROM outbox WHERE id = %(id)s FOR UPDATE",
    "last_copy": "SELECT max(id) FROM outbox WHERE resend_of = %(id)s",
    "copy_entry": """
        INSERT INTO outbox (message_id, route, destination, payload, patient_key, lane_hash,
            status, attempts, next_attempt_at, updated_at, resend_of)
        SELECT message_id, route, destination, payload, patient_key, lane_hash,
            'pending', 0, 0, %(now)s, id
        FROM outbox WHERE id = %(id)s RETURNING id""",
    "set_status": "UPDATE outbox SET status = %(status)s, updated_at = %(now)s WHERE id = %(id)s",
    "insert_action": """
        INSERT INTO operator_actions (at, entry_id, action, reason)
        VALUES (%(at)s, %(entry_id)s, %(action)s, %(reason)s)""",
    "unrouted": "SELECT route, count(*) FROM messages WHERE status = 'received' GROUP BY route",
    "prune_entries": f"""
        DELETE FROM outbox WHERE id IN (
            SELECT id FROM outbox WHERE status IN ({FINISHED_VALUES})
              AND updated_at < %(before)s AND id < (SELECT max(id) FROM outbox)
            LIMIT %(limit)s)""",  # noqa: S608 - constant SQL
    "prune_messages": """
        DELETE FROM messages WHERE id IN (
            SELECT id FROM messages m WHERE status IN ('routed', 'dropped')
              AND received_at < %(before)s AND id < (SELECT max(id) FROM messages)
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id)
            LIMIT %(limit)s)""",
    "insert_audit": """
        INSERT INTO audit (at, "user", action, target, detail)
        VALUES (%(at)s, %(user)s, %(action)s, %(target)s, %(detail)s)""",
    "audit": """
        SELECT at, "user", action, target, detail, id FROM audit
        WHERE (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC LIMIT %(limit)s""",
    "forget_login_failures": "DELETE FROM login_failures WHERE at <= %(before)s",
    "insert_login_failure": """
        INSERT INTO login_failures ("user", client, at) VALUES (%(user)s, %(client)s, %(at)s)""",
    "login_failures": """
        SELECT at FROM login_failures
        WHERE "user" = %(user)s AND client = %(client)s AND at > %(since)s ORDER BY at""",
    "clear_login_failures": """
        DELETE FROM login_failures
        WHERE "user" = %(user)s AND (%(client)s::text IS NULL OR client = %(client)s)""",
    # reprocessing (`rules.reprocess`)
    "message_to_reprocess": """
        SELECT route, sending_application, sending_facility, control_id, message_type,
            content_hash, raw, status, reprocess_of
        FROM messages WHERE id = %(id)s""",
    "copies_of": "SELECT id FROM messages WHERE reprocess_of = %(id)s ORDER BY id",
    "reprocess_link": "SELECT reprocess_of FROM messages WHERE id = %(id)s",
    "destinations_of": """
        SELECT DISTINCT destination FROM outbox WHERE message_id = %(id)s
        ORDER BY destination""",
    "insert_copy": """
        INSERT INTO messages (received_at, route, peer, sending_application, sending_facility,
            control_id, message_type, content_hash, size, raw, ack, status, reprocess_of,
            reprocess_to, patient_id, patient_name, birth_date)
        SELECT %(received_at)s, %(route)s, %(peer)s, %(sending_application)s,
            %(sending_facility)s, %(control_id)s, %(message_type)s, %(content_hash)s,
            %(size)s, %(raw)s, %(ack)s, 'received', %(reprocess_of)s, %(reprocess_to)s,
            patient_id, patient_name, birth_date  -- the original's: the same bytes
        FROM messages WHERE id = %(reprocess_of)s
        ON CONFLICT (route, sending_application, sending_facility, control_id)
        DO NOTHING RETURNING id""",
    # console queries: a search is its conditions (`engine.store.rules.find_messages`)
    # the page's ids first, so that only its rows are summarised (not every row sorted)
    "find_messages": _SUMMARY  # noqa: S608 - constant SQL
    + """WHERE m.id IN (SELECT m.id FROM messages m WHERE {where}
        ORDER BY m.id DESC LIMIT %(limit)s) ORDER BY m.id DESC""",
    "find_messages:route": "m.route = %(route)s",
    "find_messages:since": "m.received_at >= %(since)s",
    "find_messages:until": "m.received_at < %(until)s",
    "find_messages:patient_id": "m.patient_id = %(patient_id)s",
    "find_messages:sending_application": "m.sending_application = %(sending_application)s",
    "find_messages:sending_facility": "m.sending_facility = %(sending_facility)s",
    "find_messages:birth_date": "m.birth_date = %(birth_date)s",
    "find_messages:before": "m.id < %(before)s",
    "find_messages:control_id": _prefix("control_id"),
    "find_messages:message_type": "m.message_type = %(message_type)s",
    "find_messages:message_kind": _prefix("message_type", "message_kind"),
    "find_messages:patient_name": _prefix("patient_name"),
    # an outcome or a delivery state: its few rows first, or the newest messages having one
    # (the few ids gathered first, ARRAY: never a backward walk of every message probing them)
    "find_messages:outcome_few": """m.id = ANY (ARRAY(
        SELECT d.message_id FROM step_decisions d WHERE d.outcome = %(outcome)s))""",
    "find_messages:outcome_many": """EXISTS (
        SELECT 1 FROM step_decisions d WHERE d.message_id = m.id AND d.outcome = %(outcome)s)""",
    "find_messages:entries_few": """
        m.id = ANY (ARRAY(SELECT o.message_id FROM outbox o WHERE {entries}))""",
    "find_messages:entries_many": """
        EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id AND {entries})""",
    "entries:status": "o.status = %(status)s",
    "entries:destination": "o.destination = %(destination)s",
    "count_decisions": """
        SELECT count(*) FROM (SELECT 1 FROM step_decisions WHERE outcome = %(outcome)s
            LIMIT %(cap)s) s""",
    "count_entries": """
        SELECT count(*) FROM (SELECT 1 FROM outbox o WHERE {entries} LIMIT %(cap)s) s""",
    "message_summary": _SUMMARY + "WHERE m.id = %(id)s",
    "message_origin": """
        SELECT peer, sending_application, sending_facility, raw FROM messages
        WHERE id = %(id)s""",
    "entry_histories": """
        SELECT id, destination, status, attempts, last_error, last_ack_code, updated_at,
            delivered_at, resend_of, coalesce(payload, %(raw)s)
        FROM outbox WHERE message_id = %(id)s ORDER BY id""",
    "dropped_messages": """
        SELECT m.id, m.route, m.control_id, m.message_type, m.received_at,
            coalesce(d.step, ''), coalesce(d.outcome, ''), coalesce(d.detail, '')
        FROM messages m LEFT JOIN step_decisions d ON d.id = (
            SELECT max(id) FROM step_decisions WHERE message_id = m.id)
        WHERE m.status = 'dropped' AND (%(route)s::text IS NULL OR m.route = %(route)s)
        ORDER BY m.id DESC LIMIT %(limit)s""",
    "decisions": """
        SELECT step, kind, outcome, detail, destination FROM step_decisions
        WHERE message_id = %(message_id)s ORDER BY id""",
    # coordination
    "leases": "SELECT name, holder, since, renewed_at, expires_at FROM leases ORDER BY name",
    "engines": "SELECT id, host, pid, started_at, seen_at FROM engines ORDER BY started_at, id",
    "put_state": """
        INSERT INTO engine_state (name, updated_at, payload)
        VALUES (%(name)s, %(now)s, %(payload)s)
        ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at,
            payload = excluded.payload""",
    "states": "SELECT name, updated_at, payload FROM engine_state ORDER BY name",
    # what the engine keeps for itself: each engine sharing the store counts its own, and
    # finds its own again when it restarts
    "delete_counters": "DELETE FROM metric_counters WHERE host = %(host)s",
    "insert_counters": Arrays("""
        INSERT INTO metric_counters (host, name, labels, value)
        SELECT c.host, c.name, c.labels, c.value
        FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[])
            AS c (host, name, labels, value)"""),
    "counters": "SELECT name, labels, value FROM metric_counters WHERE host = %(host)s",
    "health": """
        INSERT INTO health (id, checked_at) VALUES (1, %(now)s)
        ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at""",
}


def queries(statement: Statement) -> list[tuple[str, Parameters]]:
    """What a statement runs, in PostgreSQL's text: its text and parameters; a batch, once
    over arrays where its text is written so (`Arrays`), else once a row; an empty batch,
    nothing."""
    sql = text_of(STATEMENTS, statement)
    batch = statement.batch
    if batch is None:
        return [(sql, statement.parameters)]
    if not isinstance(sql, Arrays):
        return [(sql, parameters) for parameters in batch]
    if not batch:
        return []
    rows = cast(Sequence[Sequence[Any]], batch)
    own = cast(Sequence[Any], statement.parameters)
    if len(rows) == 1:
        return [(sql.one, [*rows[0], *own])]
    return [(sql, [*(list(column) for column in zip(*rows, strict=True)), *own])]
