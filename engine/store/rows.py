"""What both backends select for an outbox entry, an entry's summary, a message's trace and
its summary, and the records built from those rows: the same columns in the same order,
whichever the SQL dialect around them."""

from __future__ import annotations

from typing import Any

from engine.store.base import (
    FINISHED,
    EntryStatus,
    EntrySummary,
    EntryTrace,
    MessageStatus,
    MessageSummary,
    MessageTrace,
    OutboxEntry,
)
from engine.store.decision import Decision

FINISHED_VALUES = ", ".join(f"'{status.value}'" for status in FINISHED)
OUTBOX_COLUMNS = """
    o.id, o.message_id, o.route, o.destination, m.control_id, m.message_type, m.received_at,
    coalesce(o.payload, m.raw), o.patient_key, o.status, o.attempts, o.next_attempt_at,
    o.last_error
"""
SUMMARY_COLUMNS = """
    o.id, o.message_id, o.route, o.destination, m.control_id, m.message_type, m.received_at,
    o.status, o.attempts, o.last_error, o.updated_at
"""
TRACE_COLUMNS = """
    id, route, received_at, peer, sending_application, sending_facility, message_type, status, ack
"""


def outbox_entry(row: tuple[Any, ...]) -> OutboxEntry:
    return OutboxEntry(*row[:7], bytes(row[7]), row[8], EntryStatus(row[9]), *row[10:])  # type: ignore[call-arg]


def entry_summary(row: tuple[Any, ...]) -> EntrySummary:
    return EntrySummary(*row[:7], EntryStatus(row[7]), *row[8:])  # type: ignore[call-arg]


def message_trace(
    row: tuple[Any, ...], decisions: list[Decision], entries: list[EntryTrace]
) -> MessageTrace:
    """A message's trace from a row of TRACE_COLUMNS, its decisions and its entries."""
    return MessageTrace(*row[:7], MessageStatus(row[7]), bytes(row[8]), decisions, entries)  # type: ignore[call-arg]


def message_summary(row: tuple[Any, ...]) -> MessageSummary:
    """A summary from its row: the message's columns, then its deliveries ("destination TAB
    status" lines) and its steps' outcomes (lines), oldest first."""
    deliveries = tuple(
        (destination, EntryStatus(status))
        for destination, status in (line.split("\t") for line in (row[8] or "").splitlines())
    )
    outcomes = tuple((row[9] or "").splitlines())
    return MessageSummary(*row[:7], bytes(row[7]), deliveries, outcomes)  # type: ignore[call-arg]
