"""What the engine keeps durably: the records every store backend reads and writes.

The SQLite backend is the embedded default (one engine per file); the PostgreSQL backend
lets several engines share one store. Both implement `engine.store.roles.Store`, with the same
behaviour (one contract test suite runs on both). Every state a message goes through is a
row change, so a crash at any point resumes where it stopped.

Order: a message's id is its position among messages, and an outbox entry's id its position
in its queue; a backend hands out ids in the order their transactions commit, so a reader
that goes on "after the last id it saw" never misses a row committed later.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.store.decision import Decision


class MessageStatus(StrEnum):
    RECEIVED = "received"  # stored and acknowledged, not yet routed
    ROUTED = "routed"  # outbox entries written for every destination that takes it
    DROPPED = "dropped"  # a step (or no destination) stopped it: kept, delivered nowhere


class EntryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    PARKED = "parked"  # needs a person: resend or skip
    SKIPPED = "skipped"  # a person decided it will not be delivered
    RESENT = "resent"  # a person queued a copy of it at the tail (`resend_of` points here)


FINISHED = (EntryStatus.DELIVERED, EntryStatus.SKIPPED, EntryStatus.RESENT)
MAX_ID = 2**63 - 1  # the largest row id both backends store (a signed 64-bit integer)
# `[engine] store_timeout_s`: below the ACK timeout of senders (often 5 to 30 s).
STORE_TIMEOUT_S = 2.0


def row_id(text: str) -> int | None:
    """A row id typed by a person (a CLI argument, a page's cursor): ASCII digits from 1 to
    MAX_ID, else None (`str.isdigit` also takes '²', which `int` refuses)."""
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


def name_key(name: str) -> str:
    """A family name as it is kept and searched: upper case, accents and marks removed
    (`Béranger` and `BERANGER` find each other)."""
    decomposed = unicodedata.normalize("NFKD", name.strip().upper())
    return "".join(char for char in decomposed if not unicodedata.combining(char))[:128]


@dataclass(frozen=True, slots=True)
class PatientKeys:
    """Who a message is about, as the message search finds it (patient data): PID-3 of type
    PI, PID-5's family name (`name_key`), PID-7's date (YYYYMMDD); '' when absent."""

    local_id: str = ""
    family_name: str = ""
    birth_date: str = ""


NO_PATIENT = PatientKeys()


@dataclass(frozen=True, slots=True)
class Incoming:
    """A received message about to be stored, with the ACK to send once it is."""

    route: str
    peer: str
    received_at: float
    sending_application: str
    sending_facility: str
    control_id: str
    message_type: str  # TYPE^EVENT
    content_hash: bytes
    raw: bytes
    ack: bytes
    decisions: Sequence[Decision] = ()  # of the steps run before the ACK
    dropped: bool = False  # a step before the ACK dropped it: stored, never routed
    patient: PatientKeys = NO_PATIENT  # who it is about, for the message search


@dataclass(frozen=True, slots=True)
class Accepted:
    """The result of storing: a new message, or a duplicate and its original ACK."""

    message_id: int
    duplicate: bool
    same_content: bool
    ack: bytes


@dataclass(frozen=True, slots=True)
class StoredMessage:
    message_id: int
    route: str
    received_at: float
    control_id: str
    message_type: str
    raw: bytes
    only_to: frozenset[str] | None = None  # a reprocessed copy: the destinations chosen


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An outbox entry written when a message is routed to one destination."""

    destination: str
    payload: bytes | None  # None: the message's received bytes
    patient_key: str | None


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """What routing decided for one message: its outbox entries and its steps' decisions."""

    message_id: int
    entries: list[NewEntry]
    decisions: Sequence[Decision] = ()
    dropped: bool = False


def routed_status(result: RoutingResult) -> MessageStatus:
    """A message's status once routed: dropped when no destination took it."""
    return MessageStatus.DROPPED if result.dropped else MessageStatus.ROUTED


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    entry_id: int
    message_id: int
    route: str
    destination: str
    control_id: str
    message_type: str
    received_at: float
    payload: bytes
    patient_key: str | None
    status: EntryStatus
    attempts: int
    next_attempt_at: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class EntrySummary:
    """What `queue list` shows of an entry: ids, type, times, attempts; no payload."""

    entry_id: int
    message_id: int
    route: str
    destination: str
    control_id: str
    message_type: str
    received_at: float
    status: EntryStatus
    attempts: int
    last_error: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One destination's open entries (pending or parked)."""

    route: str
    destination: str
    pending: int
    parked: int
    oldest_pending_at: float | None
    head_attempts: int  # attempts of the most-retried pending entry: a stuck head shows here
    last_error: str | None  # the latest error among open entries


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of an operator action on one entry; `detail` says what happened."""

    entry_id: int
    done: bool
    detail: str
    new_entry_id: int | None = None


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """The outcome of reprocessing one message: its copy (`copy_id`, carrying `control_id`
    as MSH-10) waits in the inbox for the route's current steps, or `detail` says why not."""

    message_id: int
    done: bool
    detail: str
    copy_id: int | None = None
    control_id: str = ""


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One dated event in a message's history: a delivery attempt or an operator action."""

    at: float
    kind: str  # "failed", "parked", "delivered", or an operator action ("skip", ...)
    detail: str  # the engine's error text, the ACK code, or the operator's reason


@dataclass(frozen=True, slots=True)
class EntryTrace:
    """One outbox entry of a traced message, with its attempts and operator actions."""

    entry_id: int
    destination: str
    status: EntryStatus
    attempts: int
    resend_of: int | None
    events: list[TraceEvent]


@dataclass(frozen=True, slots=True)
class MessageTrace:
    """What happened to one received message: stored, answered, its steps' decisions,
    routed or dropped, delivered."""

    message_id: int
    route: str
    received_at: float
    peer: str
    sending_application: str
    sending_facility: str
    message_type: str
    status: MessageStatus
    ack: bytes = field(repr=False)  # the ACK sent (empty when none was sent)
    decisions: list[Decision]
    entries: list[EntryTrace]


@dataclass(frozen=True, slots=True)
class ComponentState:
    """A component's state as the running engine last published it (JSON text)."""

    name: str
    updated_at: float
    payload: str


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """A message search (the console's list, `ins-engine messages`): every field given
    narrows it; newest first, a page of `limit` older than `before_id` (keyset paging, so
    messages stored meanwhile never shift a page). `patient_name` and `birth_date` are
    patient data: only the vigilance role may search by them."""

    control_id: str | None = None  # MSH-10 starts with this
    route: str | None = None
    since: float | None = None  # received at or after (epoch)
    until: float | None = None  # received before
    status: EntryStatus | None = None  # one of its outbox entries is in this state
    destination: str | None = None  # ...and to this destination
    outcome: str | None = None  # one of its steps decided this outcome
    patient_id: str | None = None  # PID-3 of type PI, exactly
    sending_application: str | None = None  # MSH-3, exactly
    sending_facility: str | None = None  # MSH-4, exactly
    message_type: str | None = None  # MSH-9: `ADT^A08` (type and event) or `ADT` (a type)
    patient_name: str | None = None  # PID-5's family name starts with this (`name_key`)
    birth_date: str | None = None  # PID-7's date, YYYYMMDD
    before_id: int | None = None  # the next page: messages older than this one
    limit: int = 50

    @property
    def by_patient_traits(self) -> bool:
        """Whether it searches by patient data (name, birth date)."""
        return bool(self.patient_name or self.birth_date)


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """A message as the console lists it: ids, times, type, the ACK sent, where it went."""

    message_id: int
    received_at: float
    route: str
    control_id: str
    message_type: str
    size: int
    status: str
    ack: bytes  # the ACK sent (an ACK holds the header's codes, never patient data)
    deliveries: tuple[tuple[str, EntryStatus], ...]  # (destination, state), oldest first
    outcomes: tuple[str, ...] = ()  # what its steps decided, in order (codes)


@dataclass(frozen=True, slots=True)
class EntryHistory:
    """One outbox entry of a message, with the bytes it carries (patient data)."""

    entry_id: int
    destination: str
    status: EntryStatus
    attempts: int
    last_error: str | None
    last_ack_code: str | None
    updated_at: float
    delivered_at: float | None
    resend_of: int | None
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """Everything the store keeps about one message; `raw` holds patient data."""

    summary: MessageSummary
    peer: str
    sending_application: str
    sending_facility: str
    raw: bytes = field(repr=False)
    entries: tuple[EntryHistory, ...] = ()
    traces: tuple[EntryTrace, ...] = ()  # each entry's delivery attempts and operators' actions
    reprocess_of: int | None = None  # the message this one is a reprocessed copy of
    reprocessed_as: tuple[int, ...] = ()  # its reprocessed copies, oldest first


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did or saw what in the console, and when. `detail` is a reason or comment."""

    at: float
    user: str
    action: str
    target: str = ""
    detail: str = ""
    audit_id: int = 0  # set when read back


@dataclass(frozen=True, slots=True)
class DroppedMessage:
    """A message stored but delivered nowhere, and the decision that stopped it."""

    message_id: int
    route: str
    control_id: str
    message_type: str
    received_at: float
    step: str
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True)
class Pruned:
    entries: int
    messages: int
    extension_rows: int = 0  # rows of step extensions past their lifetime (INSi results...)


Parameters = Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease an engine holds: the right to do one job (route, deliver one lane) alone.
    `token` grows each time the lease changes holder: a write fenced with an older token
    is refused (`LeaseLost`)."""

    name: str
    holder: str
    token: int
    since: float


@dataclass(frozen=True, slots=True)
class LeaseClaim:
    """The answer to a claim: the lease when this engine holds it now, otherwise who
    holds it and for how many more seconds unless renewed."""

    lease: Lease | None
    holder: str
    remaining_s: float


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A lease as `queue status` shows it (times are epoch seconds, the store's clock)."""

    name: str
    holder: str
    since: float
    renewed_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class EngineState:
    """An engine that runs, or ran, on the store, with its last sign of life."""

    engine_id: str
    host: str
    pid: int
    started_at: float
    seen_at: float
