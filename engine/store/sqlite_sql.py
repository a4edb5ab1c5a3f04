"""The SQLite text of every statement the store's rules name (`engine.store.rules`).

Parameters are named (`:name`), or positional (`?`, `?N`) in the statements the engine runs
for every message (binding by name costs more than the statement); a batch runs with
`executemany`, or as one statement over all its rows (`Values`), or a statement a row
(`EachRow`) when its rows are wanted back. What differs from
PostgreSQL's: `INSERT OR REPLACE`, `group_concat`, the lanes' hash as a function
(`lane_of`, registered on the reading connections), no row locks (one writer).
"""

from __future__ import annotations

import functools

from engine.store.rows import FINISHED_VALUES, OUTBOX_COLUMNS, SUMMARY_COLUMNS, TRACE_COLUMNS

VALUES_ROWS = 128  # the most rows of a `Values` statement (its parameters: under 32,766)


class Values(str):
    """A batch statement run as few statements as can hold its rows: `{values}` in its text
    becomes one `(?, ...)` per row; its outcome's rows are what its RETURNING gives."""

    __slots__ = ()

    def chunks(self, rows: int) -> list[int]:
        """How many rows each statement takes: powers of two, so that few texts are
        prepared (and cached) whatever the batches' sizes."""
        sizes = []
        while rows:
            size = min(VALUES_ROWS, 1 << (rows.bit_length() - 1))
            sizes.append(size)
            rows -= size
        return sizes

    def text(self, rows: int, width: int) -> str:
        return _values_text(self, rows, width)


class EachRow(str):
    """A batch statement run once per row, then the statement's own parameters (`?N` after
    the row's), its rows what RETURNING gives: an UPDATE by id costs less so than as a join
    over VALUES rows, which SQLite materialises."""

    __slots__ = ()


@functools.lru_cache(maxsize=64)
def _values_text(statement: str, rows: int, width: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return statement.replace("{values}", ", ".join([row] * rows))


_SUMMARY = """
    SELECT m.id, m.received_at, m.route, m.control_id, m.message_type, m.size, m.status, m.ack,
        (SELECT group_concat(o.destination || char(9) || o.status, char(10))
         FROM (SELECT destination, status FROM outbox WHERE message_id = m.id ORDER BY id) o),
        (SELECT group_concat(d.outcome, char(10))
         FROM (SELECT outcome FROM step_decisions WHERE message_id = m.id ORDER BY id) d)
    FROM messages m
"""
_PENDING = f"""
    SELECT {OUTBOX_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
    WHERE o.route = ? AND o.destination = ? AND o.status = 'pending' AND o.id > ?"""  # noqa: S608 - constant SQL
_ENTRIES = f"""
    SELECT {SUMMARY_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
    WHERE o.status = :status AND (:route IS NULL OR o.route = :route)
      AND (:destination IS NULL OR o.destination = :destination)"""  # noqa: S608 - constant SQL

_MARK_DELIVERED = """
    UPDATE outbox SET status = 'delivered', delivered_at = ?3, updated_at = ?3,
        attempts = attempts + 1, last_ack_code = ?2
    WHERE id = ?1 AND status = 'pending'"""
_FENCE = " AND EXISTS (SELECT 1 FROM leases WHERE name = :lease AND token = :token)"
_RECORD_FAILURE = """
    UPDATE outbox SET status = :status, attempts = attempts + 1, last_error = :error,
        next_attempt_at = :due, updated_at = :now
    WHERE id = :id AND status = 'pending'"""


def _prefix(column: str) -> str:
    """The condition "`column` starts with the parameter", over its index: at or above the
    prefix, below `NAME_end` (`engine.store.rules._after_prefix`)."""
    return f"m.{column} >= :{column} AND m.{column} < :{column}_end"


STATEMENTS = {
    # inbox
    # the messages of a batch; the sender key tells the new ones (`rules.accept_many`)
    "insert_messages": Values("""
        INSERT INTO messages (received_at, route, peer, sending_application, sending_facility,
            control_id, message_type, content_hash, size, raw, ack, status, patient_id,
            patient_name, birth_date)
        VALUES {values}
        ON CONFLICT DO NOTHING
        RETURNING id, route, sending_application, sending_facility, control_id"""),
    "message_by_sender_key": """
        SELECT id, content_hash, ack FROM messages WHERE route = ?
        AND sending_application = ? AND sending_facility = ? AND control_id = ?""",
    "received": """
        SELECT id, route, received_at, control_id, message_type, raw, reprocess_to
        FROM messages
        WHERE status = 'received' AND id > ? ORDER BY id LIMIT ?""",
    # (message id, status)
    "mark_routed": "UPDATE messages SET status = ?2 WHERE id = ?1 AND status = 'received'",
    # (message id, destination, payload, patient key, lane hash (PostgreSQL's), now)
    "insert_entries": """
        INSERT INTO outbox (message_id, route, destination, payload, patient_key, status,
            attempts, next_attempt_at, updated_at)
        SELECT id, route, ?2, ?3, ?4, 'pending', 0, 0, ?6
        FROM messages WHERE id = ?1""",
    "insert_decisions": """
        INSERT INTO step_decisions (message_id, recorded_at, destination, step, kind, outcome,
            detail)
        VALUES (?, ?, ?, ?, ?, ?, ?)""",
    # outbox
    # (route, destination, after[, lanes, lane], limit)
    "pending_entries": _PENDING + " ORDER BY o.id LIMIT ?",
    "pending_entries_of_lane": _PENDING
    + " AND lane_of(o.patient_key, ?) = ? ORDER BY o.id LIMIT ?",
    "lease_token": "SELECT token FROM leases WHERE name = ?",
    # (entry id, ACK code, now) a mark; fenced, then the lease's name and token
    "mark_delivered_many": EachRow(_MARK_DELIVERED + " RETURNING id"),
    "mark_delivered_many_fenced": EachRow(
        _MARK_DELIVERED  # noqa: S608 - constant SQL
        + " AND EXISTS (SELECT 1 FROM leases WHERE name = ?4 AND token = ?5) RETURNING id"
    ),
    "record_failure": _RECORD_FAILURE,
    "record_failure_fenced": _RECORD_FAILURE + _FENCE,
    "insert_failure": """
        INSERT INTO delivery_failures (entry_id, at, error, parked)
        VALUES (:entry_id, :at, :error, :parked)""",
    "entry_status": "SELECT status FROM outbox WHERE id = :id",
    # operator
    "queue_status": """
        SELECT q.route, q.destination, q.pending, q.parked,
            (SELECT m.received_at FROM outbox h JOIN messages m ON m.id = h.message_id
             WHERE h.id = q.head),
            q.head_attempts,
            (SELECT last_error FROM outbox e WHERE e.route = q.route
               AND e.destination = q.destination AND e.status IN ('pending', 'parked')
               AND e.last_error IS NOT NULL
             ORDER BY e.updated_at DESC LIMIT 1)
        FROM (SELECT route, destination, sum(status = 'pending') AS pending,
                  sum(status = 'parked') AS parked,
                  min(CASE WHEN status = 'pending' THEN id END) AS head,
                  coalesce(max(CASE WHEN status = 'pending' THEN attempts END), 0)
                      AS head_attempts
              FROM outbox WHERE status IN ('pending', 'parked')
              GROUP BY route, destination) q
        ORDER BY q.route, q.destination""",
    "entries_oldest_first": _ENTRIES + " ORDER BY o.id ASC LIMIT :limit",
    "entries_newest_first": _ENTRIES + " ORDER BY o.id DESC LIMIT :limit",
    "entry_ids": """
        SELECT id FROM outbox WHERE route = :route AND destination = :destination
            AND status = :status
        ORDER BY id""",
    "messages_by_control_id": f"""
        SELECT {TRACE_COLUMNS} FROM messages
        WHERE control_id = :control_id AND (:route IS NULL OR route = :route)
        ORDER BY id""",  # noqa: S608 - constant SQL
    "entries_of_message": """
        SELECT id, destination, status, attempts, resend_of, delivered_at, last_ack_code
        FROM outbox WHERE message_id = :message_id ORDER BY id""",
    "failures_of_entry": """
        SELECT at, error, parked FROM delivery_failures WHERE entry_id = :entry_id
        ORDER BY id""",
    "actions_of_entry": """
        SELECT at, action, reason FROM operator_actions WHERE entry_id = :entry_id
        ORDER BY id""",
    "entry_status_for_update": "SELECT status FROM outbox WHERE id = :id",
    "last_copy": "SELECT max(id) FROM outbox WHERE resend_of = :id",
    "copy_entry": """
        INSERT INTO outbox (message_id, route, destination, payload, patient_key, status,
            attempts, next_attempt_at, updated_at, resend_of)
        SELECT message_id, route, destination, payload, patient_key, 'pending', 0, 0, :now, id
        FROM outbox WHERE id = :id RETURNING id""",
    "set_status": "UPDATE outbox SET status = :status, updated_at = :now WHERE id = :id",
    "insert_action": """
        INSERT INTO operator_actions (at, entry_id, action, reason)
        VALUES (:at, :entry_id, :action, :reason)""",
    "unrouted": "SELECT route, count(*) FROM messages WHERE status = 'received' GROUP BY route",
    "prune_entries": f"""
        DELETE FROM outbox WHERE id IN (
            SELECT id FROM outbox WHERE status IN ({FINISHED_VALUES})
              AND updated_at < :before AND id < (SELECT max(id) FROM outbox) LIMIT :limit)""",  # noqa: S608 - constant SQL
    "prune_messages": """
        DELETE FROM messages WHERE id IN (
            SELECT id FROM messages m WHERE status IN ('routed', 'dropped')
              AND received_at < :before AND id < (SELECT max(id) FROM messages)
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id)
            LIMIT :limit)""",
    "insert_audit": """
        INSERT INTO audit (at, user, action, target, detail)
        VALUES (:at, :user, :action, :target, :detail)""",
    "audit": """
        SELECT at, user, action, target, detail, id FROM audit
        WHERE (:before IS NULL OR id < :before) ORDER BY id DESC LIMIT :limit""",
    "forget_login_failures": "DELETE FROM login_failures WHERE at <= :before",
    "insert_login_failure": """
        INSERT INTO login_failures (user, client, at) VALUES (:user, :client, :at)""",
    "login_failures": """
        SELECT at FROM login_failures
        WHERE user = :user AND client = :client AND at > :since ORDER BY at""",
    "clear_login_failures": """
        DELETE FROM login_failures
        WHERE user = :user AND (:client IS NULL OR client = :client)""",
    # reprocessing (`rules.reprocess`)
    "message_to_reprocess": """
        SELECT route, sending_application, sending_facility, control_id, message_type,
            content_hash, raw, status, reprocess_of
        FROM messages WHERE id = :id""",
    "copies_of": "SELECT id FROM messages WHERE reprocess_of = :id ORDER BY id",
    "reprocess_link": "SELECT reprocess_of FROM messages WHERE id = :id",
    "destinations_of": """
        SELECT DISTINCT destination FROM outbox WHERE message_id = :id
        ORDER BY destination""",
    "insert_copy": """
        INSERT INTO messages (received_at, route, peer, sending_application, sending_facility,
            control_id, message_type, content_hash, size, raw, ack, status, reprocess_of,
            reprocess_to, patient_id, patient_name, birth_date)
        SELECT :received_at, :route, :peer, :sending_application,
            :sending_facility, :control_id, :message_type, :content_hash,
            :size, :raw, :ack, 'received', :reprocess_of, :reprocess_to,
            patient_id, patient_name, birth_date  -- the original's: the same bytes
        FROM messages WHERE id = :reprocess_of
        ON CONFLICT DO NOTHING RETURNING id""",
    # console queries: a search is its conditions (`engine.store.rules.find_messages`)
    # the page's ids first, so that only its rows are summarised (not every row sorted)
    "find_messages": _SUMMARY  # noqa: S608 - constant SQL
    + """WHERE m.id IN (SELECT m.id FROM messages m WHERE {where}
        ORDER BY m.id DESC LIMIT :limit) ORDER BY m.id DESC""",
    "find_messages:route": "m.route = :route",
    "find_messages:since": "m.received_at >= :since",
    "find_messages:until": "m.received_at < :until",
    "find_messages:patient_id": "m.patient_id = :patient_id",
    "find_messages:sending_application": "m.sending_application = :sending_application",
    "find_messages:sending_facility": "m.sending_facility = :sending_facility",
    "find_messages:birth_date": "m.birth_date = :birth_date",
    "find_messages:before": "m.id < :before",
    "find_messages:control_id": _prefix("control_id"),
    "find_messages:message_type": "m.message_type = :message_type",
    # every event of a type: most messages are of one type, so read newest first and keep
    # those of this type (`+`: not through the type's index, which would sort them all)
    "find_messages:message_kind": """
        +m.message_type >= :message_kind AND +m.message_type < :message_kind_end""",
    "find_messages:patient_name": _prefix("patient_name"),
    # an outcome or a delivery state: its few rows first, or the newest messages having one
    "find_messages:outcome_few": """
        m.id IN (SELECT d.message_id FROM step_decisions d WHERE d.outcome = :outcome)""",
    "find_messages:outcome_many": """EXISTS (
        SELECT 1 FROM step_decisions d WHERE d.message_id = m.id AND d.outcome = :outcome)""",
    "find_messages:entries_few": "m.id IN (SELECT o.message_id FROM outbox o WHERE {entries})",
    "find_messages:entries_many": """
        EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id AND {entries})""",
    "entries:status": "o.status = :status",
    "entries:destination": "o.destination = :destination",
    "count_decisions": """
        SELECT count(*) FROM (SELECT 1 FROM step_decisions WHERE outcome = :outcome
            LIMIT :cap) s""",
    "count_entries": "SELECT count(*) FROM (SELECT 1 FROM outbox o WHERE {entries} LIMIT :cap) s",
    "message_summary": _SUMMARY + "WHERE m.id = :id",
    "message_origin": """
        SELECT peer, sending_application, sending_facility, raw FROM messages WHERE id = :id""",
    "entry_histories": """
        SELECT id, destination, status, attempts, last_error, last_ack_code, updated_at,
            delivered_at, resend_of, coalesce(payload, :raw)
        FROM outbox WHERE message_id = :id ORDER BY id""",
    "dropped_messages": """
        SELECT m.id, m.route, m.control_id, m.message_type, m.received_at,
            coalesce(d.step, ''), coalesce(d.outcome, ''), coalesce(d.detail, '')
        FROM messages m LEFT JOIN step_decisions d ON d.id = (
            SELECT max(id) FROM step_decisions WHERE message_id = m.id)
        WHERE m.status = 'dropped' AND (:route IS NULL OR m.route = :route)
        ORDER BY m.id DESC LIMIT :limit""",
    "decisions": """
        SELECT step, kind, outcome, detail, destination FROM step_decisions
        WHERE message_id = :message_id ORDER BY id""",
    # coordination
    "leases": "SELECT name, holder, since, renewed_at, expires_at FROM leases ORDER BY name",
    "engines": "SELECT id, host, pid, started_at, seen_at FROM engines ORDER BY started_at, id",
    "put_state": """
        INSERT INTO engine_state (name, updated_at, payload) VALUES (:name, :now, :payload)
        ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at,
            payload = excluded.payload""",
    "states": "SELECT name, updated_at, payload FROM engine_state ORDER BY name",
    # what the engine keeps for itself (one engine per file: one set of counters)
    "delete_counters": "DELETE FROM metric_counters",
    "insert_counters": """
        INSERT INTO metric_counters (name, labels, value) VALUES (?2, ?3, ?4)""",  # (host, ...)
    "counters": "SELECT name, labels, value FROM metric_counters",
    "health": "INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, :now)",
}
