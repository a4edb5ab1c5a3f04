"""What the store does, rule by rule, for every backend: each a flow of named statements
(`engine.store.flows`) with the Python around them. The statements' text is the dialects'
(`engine.store.sqlite_sql`, `engine.store.pg_sql`); how a flow is committed (grouped, durably
or not, in id order) is the backend's (`engine.store.sql_store`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.errors import LeaseLost, StoreError
from engine.hl7.header import with_control_id_suffix
from engine.store.actions import (
    OPEN,
    becomes_resent,
    copy_suffix,
    delivered_after_skip,
    reprocess_refusal,
    reprocessed,
    resend_refusal,
    resent,
    skip_refusal,
    skipped,
)
from engine.store.base import (
    Accepted,
    ActionResult,
    AuditEntry,
    ComponentState,
    DroppedMessage,
    EngineState,
    EntryHistory,
    EntryStatus,
    EntrySummary,
    EntryTrace,
    Incoming,
    Lease,
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
    Reprocessed,
    RoutingResult,
    StoredMessage,
    TraceEvent,
    name_key,
    routed_status,
)
from engine.store.decision import Decision
from engine.store.extension import StoreExtension
from engine.store.flows import Flow, Statement, rows_of
from engine.store.lanes import lane_hash
from engine.store.rows import entry_summary, message_summary, message_trace, outbox_entry

# A step kind's decisions, recorded in its extension's own table: kind -> (extension, SQL).
Recorders = Mapping[str, tuple[StoreExtension, str]]
ERROR_CHARS = 500  # of a failed attempt's error, kept with the entry
_RECEIVED = MessageStatus.RECEIVED.value  # (an enum's `value` costs a call: once a message)
_DROPPED = MessageStatus.DROPPED.value


# -- inbox ------------------------------------------------------------------------------


def accept_many(incomings: Sequence[Incoming], recorders: Recorders) -> Flow[list[Accepted]]:
    """Store the messages of one read (or one caller's batch) in one statement, their ids in
    the batch's order; a message whose sender key is stored already, or earlier in the batch,
    is a duplicate, answered with the original's id and ACK."""
    if not incomings:
        return []
    inserted = yield Statement("insert_messages", batch=[_message_row(i) for i in incomings])
    new = {
        (route, app, facility, control_id): message_id
        for message_id, route, app, facility, control_id in inserted.rows
    }
    accepted: list[Accepted] = []
    firsts: dict[tuple[str, str, str, str], tuple[int, Incoming]] = {}
    decided: list[tuple[int, Decision]] = []
    for incoming in incomings:
        key = sender_key(incoming)
        message_id = new.pop(key, None)
        if message_id is not None:
            firsts[key] = (message_id, incoming)
            decided += [(message_id, decision) for decision in incoming.decisions]
            accepted.append(Accepted(message_id, False, True, incoming.ack))
            continue
        if key in firsts:  # sent twice in one batch
            message_id, original = firsts[key]
            content_hash, ack = original.content_hash, original.ack
        else:
            found = yield Statement("message_by_sender_key", key)
            message_id, stored_hash, stored_ack = found.rows[0]
            content_hash, ack = bytes(stored_hash), bytes(stored_ack)
        accepted.append(Accepted(message_id, True, content_hash == incoming.content_hash, ack))
    if decided:
        yield from record_decisions(decided, time.time(), recorders)
    return accepted


def _message_row(incoming: Incoming) -> tuple[Any, ...]:
    """The columns of `insert_messages`, in its order (positional: no dict a message)."""
    patient = incoming.patient
    return (
        incoming.received_at,
        incoming.route,
        incoming.peer,
        incoming.sending_application,
        incoming.sending_facility,
        incoming.control_id,
        incoming.message_type,
        incoming.content_hash,
        len(incoming.raw),
        incoming.raw,
        incoming.ack,
        _DROPPED if incoming.dropped else _RECEIVED,
        patient.local_id,
        patient.family_name,
        patient.birth_date,
    )


def sender_key(incoming: Incoming) -> tuple[str, str, str, str]:
    """The sender key a duplicate is found by: route, MSH-3, MSH-4, MSH-10."""
    return (
        incoming.route,
        incoming.sending_application,
        incoming.sending_facility,
        incoming.control_id,
    )


def received(after_id: int, limit: int) -> Flow[list[StoredMessage]]:
    rows = yield from rows_of(Statement("received", (after_id, limit)))
    return [
        StoredMessage(message_id, route, at, control_id, kind, raw, _destinations(to))
        for message_id, route, at, control_id, kind, raw, to in rows
    ]


def _destinations(stored: str | None) -> frozenset[str] | None:
    """The destinations a reprocessed copy goes to (None: every one that takes it)."""
    return None if stored is None else frozenset(stored.split(","))


def route_messages(routed: list[RoutingResult], now: float, recorders: Recorders) -> Flow[None]:
    """Mark the messages routed (only from 'received': a message routed already, by another
    engine's router when a lease changed hands, fails the whole batch rather than be routed
    twice), then write their entries, in the batch's order, and their decisions."""
    marked = yield batch(
        "mark_routed", [(result.message_id, routed_status(result).value) for result in routed]
    )
    if marked.rowcount != len(routed):
        raise StoreError("messages already routed")
    yield batch(
        "insert_entries",
        [
            (
                result.message_id,
                entry.destination,
                entry.payload,
                entry.patient_key,
                lane_hash(entry.patient_key),
                now,
            )
            for result in routed
            for entry in result.entries
        ],
    )
    decided = [(result.message_id, d) for result in routed for d in result.decisions]
    yield from record_decisions(decided, now, recorders)


def record_decisions(
    decided: list[tuple[int, Decision]], now: float, recorders: Recorders
) -> Flow[None]:
    """The generic decision rows, then each extension's rows, in the caller's transaction."""
    if not decided:
        return
    yield batch(
        "insert_decisions",
        [
            (message_id, now, d.destination, d.step, d.kind, d.outcome, d.detail)
            for message_id, d in decided
        ],
    )
    rows: dict[str, list[Sequence[Any]]] = {}
    for message_id, decision in decided:
        recorder = recorders.get(decision.kind)
        if recorder is not None:
            row = recorder[0].row(message_id, now, decision)
            if row is not None:
                rows.setdefault(recorder[1], []).append(row)
    for text, parameters in rows.items():
        yield Statement.own(text, batch=parameters)


# -- outbox -----------------------------------------------------------------------------


def pending_entries(
    route: str, destination: str, after_entry_id: int, limit: int, lane: int, lanes: int
) -> Flow[list[OutboxEntry]]:
    if lanes > 1:
        of_lane = (route, destination, after_entry_id, lanes, lane, limit)
        rows = yield from rows_of(Statement("pending_entries_of_lane", of_lane))
    else:
        rows = yield from rows_of(
            Statement("pending_entries", (route, destination, after_entry_id, limit))
        )
    return [outbox_entry(row) for row in rows]


def mark_delivered_many(
    marks: Sequence[tuple[int, str]], fence: Lease | None, now: float
) -> Flow[list[bool]]:
    """Record a lane's deliveries (entry id, ACK code) in one statement, each answered: True
    once marked; False for an entry no longer pending, such as one an operator skipped while
    its send was in flight (the skip stands, and the audit says the receiver got it anyway).
    Fenced, the whole batch is refused (`LeaseLost`) once the lease has changed holder
    (`fenced_update`)."""
    if not marks:
        return []
    rows = [(entry_id, ack or None, now) for entry_id, ack in marks]
    if fence is None:
        done = yield Statement("mark_delivered_many", batch=rows)
    else:
        held = (fence.name, fence.token)
        done = yield Statement("mark_delivered_many_fenced", held, batch=rows)
        if not done.rows:  # none marked: the lease lost, or none still pending
            yield from _check_fence(fence)
    marked = {entry_id for (entry_id,) in done.rows}
    answers = []
    for entry_id, ack_code in marks:
        if entry_id in marked:
            marked.discard(entry_id)  # an entry marked twice in a batch: once
            answers.append(True)
            continue
        if (yield from status_for_action(entry_id)) is EntryStatus.SKIPPED:
            yield from record_action(now, entry_id, *delivered_after_skip(ack_code))
        answers.append(False)
    return answers


def record_failure(
    entry_id: int, error: str, next_attempt_at: float, park: bool, fence: Lease | None, now: float
) -> Flow[None]:
    """A failed attempt counts only while the entry is pending (an operator's skip wins)."""
    status = EntryStatus.PARKED if park else EntryStatus.PENDING
    kept = error[:ERROR_CHARS]
    parameters = {
        "status": status.value,
        "error": kept,
        "due": next_attempt_at,
        "now": now,
        "id": entry_id,
    }
    yield from fenced_update("record_failure", parameters, fence)
    yield Statement(
        "insert_failure", {"entry_id": entry_id, "at": now, "error": kept, "parked": park}
    )


def fenced_update(name: str, parameters: dict[str, Any], fence: Lease | None) -> Flow[int]:
    """Run an entry update (`name`), with a fence only while the lease has not changed
    holder (`name` + "_fenced"); the rows it changed. Where engines share the store, the
    fenced statement share-locks the lease row until the write commits: a claim by another
    engine waits for it, so a write never lands after a takeover (and one committed just
    before is seen: the token no longer matches)."""
    if fence is None:
        return (yield Statement(name, parameters)).rowcount
    fenced = {**parameters, "lease": fence.name, "token": fence.token}
    changed = (yield Statement(f"{name}_fenced", fenced)).rowcount
    if changed == 0:
        yield from _check_fence(fence)
    return changed


def _check_fence(fence: Lease) -> Flow[None]:
    """`LeaseLost` when the lease has changed holder since `fence` was taken."""
    found = yield Statement("lease_token", (fence.name,))
    if found.first is None or found.first[0] != fence.token:
        raise LeaseLost(f"lease {fence.name} is no longer held by this engine")


def entry_status(entry_id: int) -> Flow[EntryStatus | None]:
    found = yield Statement("entry_status", {"id": entry_id})
    return None if found.first is None else EntryStatus(found.first[0])


# -- operator ---------------------------------------------------------------------------


def queue_status() -> Flow[list[QueueStatus]]:
    rows = yield from rows_of(Statement("queue_status"))
    return [QueueStatus(*row) for row in rows]


def list_entries(
    status: EntryStatus, route: str | None, destination: str | None, limit: int
) -> Flow[list[EntrySummary]]:
    """Open entries oldest first (FIFO), finished ones newest first."""
    name = "entries_oldest_first" if status in OPEN else "entries_newest_first"
    parameters = {"status": status.value, "route": route, "destination": destination}
    rows = yield from rows_of(Statement(name, {**parameters, "limit": limit}))
    return [entry_summary(row) for row in rows]


def entry_ids(status: EntryStatus, route: str, destination: str) -> Flow[list[int]]:
    parameters = {"route": route, "destination": destination, "status": status.value}
    rows = yield from rows_of(Statement("entry_ids", parameters))
    return [row[0] for row in rows]


def trace(control_id: str, route: str | None) -> Flow[list[MessageTrace]]:
    messages = yield from rows_of(
        Statement("messages_by_control_id", {"control_id": control_id, "route": route})
    )
    traces = []
    for row in messages:
        decided = yield from decisions(row[0])
        entries = yield from entry_traces(row[0])
        traces.append(message_trace(row, decided, entries))
    return traces


def entry_traces(message_id: int) -> Flow[list[EntryTrace]]:
    """A message's entries, each with its failed attempts, operator actions and delivery
    in time order."""
    entries = yield from rows_of(Statement("entries_of_message", {"message_id": message_id}))
    traces = []
    for entry_id, destination, status, attempts, resend_of, delivered_at, ack_code in entries:
        failures = yield from rows_of(Statement("failures_of_entry", {"entry_id": entry_id}))
        actions = yield from rows_of(Statement("actions_of_entry", {"entry_id": entry_id}))
        events = [
            TraceEvent(at, "parked" if parked else "failed", error)
            for at, error, parked in failures
        ]
        events += [TraceEvent(at, action, reason) for at, action, reason in actions]
        if delivered_at is not None:
            events.append(TraceEvent(delivered_at, "delivered", ack_code or ""))
        events.sort(key=lambda event: event.at)
        traces.append(
            EntryTrace(entry_id, destination, EntryStatus(status), attempts, resend_of, events)
        )
    return traces


def resend(entry_ids: list[int], reason: str, now: float) -> Flow[list[ActionResult]]:
    """Queue a copy of each parked, skipped or delivered entry at its queue's tail."""
    results = []
    for entry_id in entry_ids:
        status = yield from status_for_action(entry_id)
        copy = None
        if status is EntryStatus.RESENT:
            (copy,) = (yield Statement("last_copy", {"id": entry_id})).rows[0]
        refusal = resend_refusal(entry_id, status, copy)
        if refusal is not None:
            results.append(refusal)
            continue
        assert status is not None  # a missing entry is refused above
        (new_id,) = (yield Statement("copy_entry", {"now": now, "id": entry_id})).rows[0]
        if becomes_resent(status):
            yield from set_status(entry_id, EntryStatus.RESENT, now)
        yield from record_action(now, entry_id, f"resend as {new_id}", reason)
        results.append(resent(entry_id, new_id))
    return results


def skip(entry_ids: list[int], reason: str, now: float) -> Flow[list[ActionResult]]:
    """Give up on pending or parked entries, recording why."""
    results = []
    for entry_id in entry_ids:
        refusal = skip_refusal(entry_id, (yield from status_for_action(entry_id)))
        if refusal is not None:
            results.append(refusal)
            continue
        yield from set_status(entry_id, EntryStatus.SKIPPED, now)
        yield from record_action(now, entry_id, "skip", reason)
        results.append(skipped(entry_id))
    return results


def status_for_action(entry_id: int) -> Flow[EntryStatus | None]:
    """An entry's status, locked (where engines share the store) until the action commits:
    a delivery mark committed meanwhile by a worker is then seen, not overwritten."""
    found = yield Statement("entry_status_for_update", {"id": entry_id})
    return None if found.first is None else EntryStatus(found.first[0])


def set_status(entry_id: int, status: EntryStatus, now: float) -> Flow[None]:
    yield Statement("set_status", {"status": status.value, "now": now, "id": entry_id})


def record_action(now: float, entry_id: int, action: str, reason: str) -> Flow[None]:
    yield Statement(
        "insert_action", {"at": now, "entry_id": entry_id, "action": action, "reason": reason}
    )


def reprocess(
    message_ids: Sequence[int], to: Sequence[str] | None, user: str, reason: str, now: float
) -> Flow[list[Reprocessed]]:
    """Store a copy of each message, as received but for its MSH-10, for the router to run
    through its route's current steps and send to `to` (None: the destinations its original
    went to, or every one that takes it when it went nowhere), at the tail of their queues.
    A copy of a copy is a copy of the original: the bytes are the sender's either way."""
    results: list[Reprocessed] = []
    copied: dict[int, int] = {}  # original -> its copy made by this call
    for asked in message_ids:
        message_id, row = asked, (yield Statement("message_to_reprocess", {"id": asked})).first
        if row is not None and row[8] is not None:  # a copy: reprocess its original
            original = (yield Statement("message_to_reprocess", {"id": row[8]})).first
            if original is not None:
                message_id, row = row[8], original
        status = None if row is None else row[7]
        refusal = reprocess_refusal(message_id, status, copied.get(message_id))
        if refusal is not None:
            results.append(refusal)
            continue
        assert row is not None  # a missing message is refused above
        route, application, facility, control_id, message_type, content_hash, raw = row[:7]
        copies = yield from rows_of(Statement("copies_of", {"id": message_id}))
        suffix = copy_suffix(len(copies) + 1)
        chosen = list(to) if to is not None else None
        if chosen is None:
            went = yield from rows_of(Statement("destinations_of", {"id": message_id}))
            chosen = [destination for (destination,) in went] or None
        payload = with_control_id_suffix(bytes(raw), suffix)
        inserted = yield Statement(
            "insert_copy",
            {
                "received_at": now,
                "route": route,
                "peer": "reprocess",
                "sending_application": application,
                "sending_facility": facility,
                "control_id": control_id + suffix,
                "message_type": message_type,
                "content_hash": content_hash,
                "size": len(payload),
                "raw": payload,
                "ack": b"",
                "reprocess_of": message_id,
                "reprocess_to": None if chosen is None else ",".join(chosen),
            },
        )
        if not inserted.rows:
            taken = f"control id {control_id}{suffix} is already stored on route {route}"
            results.append(Reprocessed(message_id, False, taken))
            continue
        ((copy_id,),) = inserted.rows
        copied[message_id] = copy_id
        target = f"message {message_id} ({control_id}) as {copy_id}"
        yield from record_audit(AuditEntry(now, user, "reprocess", target, reason))
        results.append(reprocessed(message_id, copy_id, control_id + suffix))
    return results


def unrouted() -> Flow[dict[str, int]]:
    rows = yield from rows_of(Statement("unrouted"))
    return {route: count for route, count in rows}


def prune(before: float, limit: int, extension_prunes: Sequence[str]) -> Flow[Pruned]:
    """The newest row of each table is never deleted: SQLite gives a new row the largest id
    plus one, so deleting it could hand out an id at or below the router's or a delivery
    worker's cursor, and that row would never be read (both backends prune alike)."""
    entries = yield Statement("prune_entries", {"before": before, "limit": limit})
    messages = yield Statement("prune_messages", {"before": before, "limit": limit})
    now = time.time()
    expired = 0
    for text in extension_prunes:
        expired += (yield Statement.own(text, (now, limit))).rowcount
    return Pruned(entries.rowcount, messages.rowcount, expired)


def record_audit(entry: AuditEntry) -> Flow[None]:
    yield Statement(
        "insert_audit",
        {
            "at": entry.at,
            "user": entry.user,
            "action": entry.action,
            "target": entry.target,
            "detail": entry.detail,
        },
    )


def audit_entries(limit: int, before_id: int | None) -> Flow[list[AuditEntry]]:
    rows = yield from rows_of(Statement("audit", {"before": before_id, "limit": limit}))
    return [AuditEntry(*row) for row in rows]


# -- login brake -------------------------------------------------------------------------


def login_failed(user: str, client: str, now: float, window_s: float) -> Flow[list[float]]:
    """Count a wrong password (forgetting every failure older than the window) and return
    the times of this user and client's failures within it, oldest first."""
    yield Statement("forget_login_failures", {"before": now - window_s})
    yield Statement("insert_login_failure", {"user": user, "client": client, "at": now})
    return (yield from login_failures(user, client, now - window_s))


def login_failures(user: str, client: str, since: float) -> Flow[list[float]]:
    parameters = {"user": user, "client": client, "since": since}
    rows = yield from rows_of(Statement("login_failures", parameters))
    return [at for (at,) in rows]


def clear_login_failures(user: str, client: str | None) -> Flow[int]:
    outcome = yield Statement("clear_login_failures", {"user": user, "client": client})
    return outcome.rowcount


# -- console queries --------------------------------------------------------------------


FEW = 20_000
"""Rows of an outcome or a delivery state under which a search starts from them (they are
the exceptions: `insi_unavailable`, parked); from that many on, it reads the newest messages
first and keeps those that have one (`added`, delivered: a page is near)."""


def find_messages(query: MessageQuery) -> Flow[list[MessageSummary]]:
    """A search: only the conditions of the filters given go into the statement, so that
    each backend plans it with the index of the filter that narrows it most; an outcome or
    a delivery state is counted first (up to `FEW`) to choose how to read it."""
    parameters: dict[str, Any] = {"limit": query.limit}
    for name in _EXACT:
        value = getattr(query, name)
        if value is not None:
            parameters[name] = value.value if isinstance(value, EntryStatus) else value
    kind = query.message_type or ""
    prefixes = {
        "control_id": query.control_id,
        "patient_name": name_key(query.patient_name or ""),
        # `ADT^A08` is one type and event (an index); `ADT` every event of a type
        "message_kind": f"{kind}^" if kind and "^" not in kind else "",
    }
    for name, value in prefixes.items():
        if value:
            parameters[name], parameters[f"{name}_end"] = value, _after_prefix(value)
    if "^" in kind:
        parameters["message_type"] = kind
    if query.before_id is not None:
        parameters["before"] = query.before_id
    conditions = [f"find_messages:{name}" for name in _COLUMNS if name in parameters]
    if query.outcome is not None:
        counted = yield Statement("count_decisions", {"outcome": query.outcome, "cap": FEW})
        conditions.append(f"find_messages:outcome_{_how_many(counted.rows)}")
    entries = tuple(f"entries:{name}" for name in ("status", "destination") if name in parameters)
    if entries:  # one condition on the entries: the same entry has the state and destination
        counted = yield Statement("count_entries", {**parameters, "cap": FEW}, conditions=entries)
        conditions += [f"find_messages:entries_{_how_many(counted.rows)}", *entries]
    rows = yield from rows_of(Statement("find_messages", parameters, conditions=tuple(conditions)))
    return [message_summary(row) for row in rows]


_EXACT = (
    "route",
    "since",
    "until",
    "status",
    "destination",
    "outcome",
    "patient_id",
    "sending_application",
    "sending_facility",
    "birth_date",
)
_COLUMNS = (  # the conditions on the message's own columns
    "route",
    "since",
    "until",
    "patient_id",
    "sending_application",
    "sending_facility",
    "birth_date",
    "control_id",
    "message_type",
    "message_kind",
    "patient_name",
    "before",
)


def _how_many(rows: list[tuple[Any, ...]]) -> str:
    return "few" if rows[0][0] < FEW else "many"


def _after_prefix(prefix: str) -> str:
    """The least string above every string starting with `prefix` (code-point order)."""
    last = ord(prefix[-1])
    return prefix[:-1] + chr(last + 1) if last < 0x10FFFF else prefix + chr(0x10FFFF)


def message_detail(message_id: int) -> Flow[MessageDetail | None]:
    found = yield Statement("message_summary", {"id": message_id})
    if found.first is None:
        return None
    origin = yield Statement("message_origin", {"id": message_id})
    peer, application, facility, raw = origin.rows[0]
    entries = yield from rows_of(Statement("entry_histories", {"id": message_id, "raw": raw}))
    histories = tuple(
        EntryHistory(*row[:2], EntryStatus(row[2]), *row[3:9], bytes(row[9]))  # type: ignore[call-arg]
        for row in entries
    )
    traces = yield from entry_traces(message_id)
    summary = message_summary(found.first)
    link = yield Statement("reprocess_link", {"id": message_id})
    copies = yield from rows_of(Statement("copies_of", {"id": message_id}))
    return MessageDetail(
        summary,
        peer,
        application,
        facility,
        bytes(raw),
        histories,
        tuple(traces),
        reprocess_of=link.first[0] if link.first else None,
        reprocessed_as=tuple(copy_id for (copy_id,) in copies),
    )


def dropped_messages(route: str | None, limit: int) -> Flow[list[DroppedMessage]]:
    rows = yield from rows_of(Statement("dropped_messages", {"route": route, "limit": limit}))
    return [DroppedMessage(*row) for row in rows]


def decisions(message_id: int) -> Flow[list[Decision]]:
    rows = yield from rows_of(Statement("decisions", {"message_id": message_id}))
    return [Decision(*row) for row in rows]


# -- coordination -----------------------------------------------------------------------


def leases() -> Flow[list[LeaseState]]:
    return [LeaseState(*row) for row in (yield from rows_of(Statement("leases")))]


def engines() -> Flow[list[EngineState]]:
    return [EngineState(*row) for row in (yield from rows_of(Statement("engines")))]


def put_state(name: str, payload: str, now: float) -> Flow[None]:
    yield Statement("put_state", {"name": name, "now": now, "payload": payload})


def states() -> Flow[list[ComponentState]]:
    return [ComponentState(*row) for row in (yield from rows_of(Statement("states")))]


# -- what the engine keeps for itself ---------------------------------------------------


def save_counters(values: list[tuple[str, str, float]], host: str) -> Flow[None]:
    """Replace this host's counters (a store one engine uses keeps one set)."""
    yield Statement("delete_counters", {"host": host})
    yield batch("insert_counters", [(host, name, labels, value) for name, labels, value in values])


def load_counters(host: str) -> Flow[list[tuple[str, str, float]]]:
    rows = yield from rows_of(Statement("counters", {"host": host}))
    return [(name, labels, value) for name, labels, value in rows]


def check_writable(now: float) -> Flow[None]:
    yield Statement("health", {"now": now})


def batch(name: str, rows: Sequence[Parameters]) -> Statement:
    """A statement run once per row (an empty batch is not run: `NOTHING`)."""
    return Statement(name, batch=rows)
