"""How the `queue` commands show the store on a console: tables, a message's trace, INSi
as the running engine last saw it, and which engine delivers what (`report engines` too).

Only ids, codes, times, counts and the engine's own texts are shown; what a sender chose
(control ids, application names) is made safe for a terminal, and message types are shown
as known codes only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from engine.delivery.service import queue_holder
from engine.hl7.codes import shown_type
from engine.ins.health import IN_PROCESS, InsiHealth
from engine.store.base import (
    ComponentState,
    DroppedMessage,
    EngineState,
    EntrySummary,
    LeaseState,
    MessageTrace,
    QueueStatus,
)
from engine.store.decision import Decision
from engine.store.lock import Holder
from engine.tools.replay.acks import AckFormatError, read_ack


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    for row in cells:
        print(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        )


def local_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).isoformat(" ", "seconds")


def printable(text: str) -> str:
    """Text a sender chose, safe on a terminal: control characters become '?'."""
    return "".join(char if char.isprintable() else "?" for char in text)


def age(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`, `3d04h`: how long something has lasted."""
    seconds = max(int(seconds), 0)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# -- queue status ----------------------------------------------------------------------


def insi_state(states: Sequence[ComponentState]) -> tuple[InsiHealth, float] | None:
    """INSi's state as the engine published it, and when; None if it never did."""
    for state in states:
        if state.name == "insi":
            return InsiHealth.from_json(json.loads(state.payload)), state.updated_at
    return None


@dataclass(frozen=True)
class Status:
    """What `queue status` shows: the queues and who delivers each, the engines, what is
    not yet routed, INSi."""

    rows: Sequence[QueueStatus]
    insi: tuple[InsiHealth, float] | None  # the state, and when the engine published it
    unrouted: dict[str, int]
    engine: Holder | None  # the engine holding a SQLite store's lock
    leases: Sequence[LeaseState] = ()
    engines: Sequence[EngineState] = ()

    def print(self, enrichment_used: bool, now: float) -> None:
        holders = [queue_holder(self.leases, row.route, row.destination, now) for row in self.rows]
        print_table(
            ["ROUTE", "DESTINATION", "PENDING", "PARKED", "OLDEST", "HEAD ATTEMPTS", "LAST ERROR",
             "DELIVERED BY", "SINCE"],
            [
                [
                    row.route,
                    row.destination,
                    row.pending,
                    row.parked,
                    age(now - row.oldest_pending_at) if row.oldest_pending_at else "-",
                    row.head_attempts,
                    row.last_error or "-",
                    holder,
                    f"{age(now - since)} ago" if since is not None else "-",
                ]
                for row, (holder, since) in zip(self.rows, holders, strict=True)
            ],
        )  # fmt: skip
        print()
        for name, value in self._facts(enrichment_used, now):
            print(f"{name:<12}{value}")

    def to_json(self, now: float) -> dict[str, Any]:
        engine, insi = self.engine, self.insi
        queues = []
        for row in self.rows:
            holder, since = queue_holder(self.leases, row.route, row.destination, now)
            queues.append({**asdict(row), "delivered_by": holder, "delivered_by_since": since})
        return {
            "queues": queues,
            "engine": {"running": engine is not None, "pid": engine.pid if engine else None},
            "engines": [asdict(state) for state in self.engines],
            "unrouted": self.unrouted,
            "insi": None if insi is None else {**insi[0].to_json(), "updated_at": insi[1]},
        }

    def _facts(self, enrichment_used: bool, now: float) -> list[tuple[str, str]]:
        insi = self.insi
        if self.engine is None and self.engines:  # engines sharing the store (PostgreSQL)
            running = "; ".join(
                f"{state.engine_id} (seen {age(now - state.seen_at)} ago)" for state in self.engines
            )
        elif self.engine is None:
            running = "not running" + (f" (INSi state as of {local_time(insi[1])})" if insi else "")
        else:
            running = "running" + (f" (PID {self.engine.pid})" if self.engine.pid else "")
        waiting = sum(self.unrouted.values())
        per_route = ", ".join(f"{route} {count}" for route, count in sorted(self.unrouted.items()))
        facts = [
            ("engine", running),
            (
                "waiting",
                f"{waiting} message(s) received, not yet routed"
                + (f" ({per_route}): enrichment waits for INSi" if waiting else ""),
            ),
        ]
        if not enrichment_used:  # a state left by an earlier configuration says nothing now
            facts.append(("INSi", "not used (no route enriches)"))
            return facts
        if insi is None:
            facts.append(("INSi", "no state recorded yet"))
            return facts
        health = insi[0]
        where = "in-process simulator" if health.endpoint == IN_PROCESS else health.endpoint
        facts.append(("INSi", where + (" (SIMULATED)" if health.simulated else "")))
        since = f" since {local_time(health.breaker_since)}" if health.breaker_since else ""
        facts.append(("breaker", f"{health.breaker}{since}: {_BREAKER.get(health.breaker, '')}"))
        if health.last_error and health.last_error_at:
            facts.append(("last error", f"{local_time(health.last_error_at)}  {health.last_error}"))
        else:
            facts.append(("last error", "-"))
        return facts


_BREAKER = {
    "closed": "calls go out",
    "open": "calls SUSPENDED after repeated failures (messages go on without INS)",
    "half_open": "one trial call decides",
}


# -- report engines --------------------------------------------------------------------


def print_engines(engines: Sequence[EngineState], leases: Sequence[LeaseState], now: float) -> None:
    """Every engine on the store, and every lease: holder, since when, until when."""
    print_table(
        ["ENGINE", "HOST", "PID", "STARTED", "LAST SEEN"],
        [
            [engine.engine_id, engine.host, engine.pid, f"{age(now - engine.started_at)} ago",
             f"{age(now - engine.seen_at)} ago"]
            for engine in engines
        ],
    )  # fmt: skip
    print()
    print_table(
        ["LEASE", "HOLDER", "SINCE", "EXPIRES"],
        [
            [lease.name, lease.holder, f"{age(now - lease.since)} ago", _expiry(lease, now)]
            for lease in leases
        ],
    )


def _expiry(lease: LeaseState, now: float) -> str:
    left = lease.expires_at - now
    return f"in {age(left)}" if left > 0 else f"expired {age(-left)} ago"


# -- queue list ------------------------------------------------------------------------


def print_entries(entries: Sequence[EntrySummary]) -> None:
    print_table(
        ["ID", "ROUTE", "DESTINATION", "CONTROL ID", "TYPE", "RECEIVED", "ATTEMPTS", "LAST ERROR"],
        [
            [
                entry.entry_id,
                entry.route,
                entry.destination,
                printable(entry.control_id),
                shown_type(entry.message_type),
                local_time(entry.received_at),
                entry.attempts,
                entry.last_error or "-",
            ]
            for entry in entries
        ],
    )


def print_dropped(dropped: Sequence[DroppedMessage]) -> None:
    print_table(
        ["MESSAGE", "ROUTE", "CONTROL ID", "TYPE", "RECEIVED", "STEP", "DECISION"],
        [
            [
                message.message_id,
                message.route,
                printable(message.control_id),
                shown_type(message.message_type),
                local_time(message.received_at),
                message.step,
                f"{message.outcome} {message.detail}".strip(),
            ]
            for message in dropped
        ],
    )


# -- queue list --control-id -------------------------------------------------------------


def answer_of(trace: MessageTrace, release2: bool) -> str:
    """What the sender was answered when the message was stored."""
    if release2:
        return "commit ACK (MLLP release 2)"
    if not trace.ack:
        return "no ACK (MSH-15 asked for none)"
    try:
        return read_ack(trace.ack).code.value
    except AckFormatError:
        return "?"


def trace_lines(trace: MessageTrace, answer: str) -> list[str]:
    sender = f"{printable(trace.sending_application)} / {printable(trace.sending_facility)}"
    lines = [
        f"message {trace.message_id}, route {trace.route}, {shown_type(trace.message_type)}, "
        f"from {sender} ({trace.peer})",
        f"  {local_time(trace.received_at)}  stored, answered {answer}",
    ]
    lines += [f"  step {_decision_text(decision)}" for decision in trace.decisions]
    lines.append(f"  {_STATUS_TEXT[trace.status.value]}")
    for entry in trace.entries:
        copy = f", resent copy of entry {entry.resend_of}" if entry.resend_of else ""
        lines.append(
            f"  entry {entry.entry_id} -> {entry.destination}: {entry.status.value}, "
            f"{entry.attempts} attempt(s){copy}"
        )
        lines += [
            f"    {local_time(event.at)}  {_event_text(event.kind, event.detail)}"
            for event in entry.events
        ]
    return lines


_STATUS_TEXT = {
    "received": "not routed yet (the route's steps have not finished)",
    "routed": "routed",
    "dropped": "dropped: kept, delivered nowhere",
}


def _decision_text(decision: Decision) -> str:
    """`ins_enrich: not_found (01)`, `lab/ward: mapped (PV1-3-1)`: a step's decision."""
    where = f"{decision.destination}/" if decision.destination else ""
    detail = f" ({decision.detail})" if decision.detail else ""
    return f"{where}{decision.step}: {decision.outcome}{detail}"


def _event_text(kind: str, detail: str) -> str:
    if kind == "failed":
        return f"attempt failed: {detail}"
    if kind == "parked":
        return f"attempt failed, parked: {detail}"
    if kind == "delivered":
        return f"delivered (ACK {detail})" if detail else "delivered"
    return f"{kind}: {detail}"  # an action recorded in the audit (skip, resend as N...)


def trace_json(trace: MessageTrace, answer: str) -> dict[str, Any]:
    data = asdict(trace)
    del data["ack"]
    for decision in data["decisions"]:
        del decision["payload"]  # kept by the step kind's tables, never read back here
    data["answer"] = answer
    data["message_type"] = shown_type(trace.message_type)
    return data
