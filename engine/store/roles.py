"""What the store offers, by role: each caller names the role it uses.

The router takes an `Inbox`, a delivery lane an `Outbox`, the lease keeper `Leases`, a step
kind `ExtensionTables`, the operator commands and the console `Operator` and
`ConsoleQueries`. `Store` is their union, what every backend implements (one contract suite,
`tests/store/test_contract.py`, runs on each); every method is safe to call from the event
loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from engine.store.base import (
    Accepted,
    ActionResult,
    AuditEntry,
    ComponentState,
    DroppedMessage,
    EngineState,
    EntryStatus,
    EntrySummary,
    Incoming,
    Lease,
    LeaseClaim,
    LeaseState,
    MessageDetail,
    MessageQuery,
    MessageSummary,
    MessageTrace,
    OutboxEntry,
    Parameters,
    Pruned,
    QueueStatus,
    Reprocessed,
    RoutingResult,
    StoredMessage,
)
from engine.store.decision import Decision


class Inbox(Protocol):
    """Messages in: stored before their ACK, then routed in arrival order."""

    async def accept(self, incoming: Incoming) -> Accepted:
        """Commit a received message (grouped with others), or find its duplicate."""
        ...

    def accept_many(self, incomings: Sequence[Incoming]) -> asyncio.Future[list[Accepted]]:
        """`accept` for several messages at once (one read's), in one write: one answer
        each, in order. A future rather than a coroutine, so that the listener answers
        from its callback without a task per read; cancelling it gives up the write if its
        group has not run yet."""
        ...

    async def received(self, after_id: int, limit: int) -> list[StoredMessage]:
        """Messages acknowledged but not yet routed, in arrival order."""
        ...

    async def route_messages(self, routed: list[RoutingResult]) -> None:
        """Write the outbox entries and decisions (with the extensions' rows) of consecutive
        messages and mark them routed or dropped, all or none: a later message is never
        routed while an earlier one fails."""
        ...


class Outbox(Protocol):
    """What a delivery lane reads and records, entry by entry, in FIFO order."""

    async def pending_entries(
        self,
        route: str,
        destination: str,
        after_entry_id: int,
        limit: int,
        lane: int = 0,
        lanes: int = 1,
    ) -> list[OutboxEntry]:
        """Pending entries of one destination in FIFO order, after a given entry; with
        `lanes` > 1, only those whose patient key falls in `lane` (see `store.lanes`)."""
        ...

    async def mark_delivered(
        self, entry_id: int, ack_code: str, fence: Lease | None = None
    ) -> bool:
        """Record the delivery of a pending entry; False when an operator skipped it while
        the send was in flight: the skip stands, and the audit records the delivery. With
        `fence`, only while that lease has not changed holder (else `LeaseLost`)."""
        ...

    async def mark_delivered_many(
        self, marks: Sequence[tuple[int, str]], fence: Lease | None = None
    ) -> list[bool]:
        """`mark_delivered` for several entries (entry id, ACK code) in one write; one
        answer each, in order (`LeaseLost` for all when the fence no longer holds)."""
        ...

    async def record_failure(
        self,
        entry_id: int,
        error: str,
        next_attempt_at: float,
        park: bool,
        fence: Lease | None = None,
    ) -> None:
        """Record a failed attempt; it counts only while the entry is pending (an operator's
        skip wins); fenced like `mark_delivered`."""
        ...

    async def entry_status(self, entry_id: int) -> EntryStatus | None: ...


class Pruning(Protocol):
    """Retention: forgetting what is finished and old."""

    async def prune(self, before: float, limit: int) -> Pruned:
        """Delete up to `limit` finished entries and fully finished messages older than
        `before`; call again until it prunes nothing."""
        ...


class Operator(Pruning, Protocol):
    """What `queue` commands and the console's queue pages read and do, and their audit."""

    async def queue_status(self) -> list[QueueStatus]:
        """Destinations with open entries, from the open-entries index only."""
        ...

    async def list_entries(
        self, status: EntryStatus, route: str | None, destination: str | None, limit: int
    ) -> list[EntrySummary]:
        """Open entries oldest first (FIFO), finished ones newest first."""
        ...

    async def entry_ids(self, status: EntryStatus, route: str, destination: str) -> list[int]:
        """Every entry of one destination in `status`, oldest first (bulk actions)."""
        ...

    async def trace(self, control_id: str, route: str | None) -> list[MessageTrace]:
        """Every stored message with this MSH-10 (several senders may use one), oldest
        first, with its steps' decisions, its outbox entries, their attempts and operator
        actions."""
        ...

    async def resend(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        """Queue a copy of each parked, skipped or delivered entry at its queue's tail."""
        ...

    async def skip(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        """Give up on pending or parked entries, recording why."""
        ...

    async def reprocess(
        self, message_ids: Sequence[int], to: Sequence[str] | None, user: str, reason: str
    ) -> list[Reprocessed]:
        """Store a copy of each message (MSH-10 suffixed `-R<n>`, linked to its original)
        as received, for the router to run through its route's current steps and send to
        `to` (None: where the original went), at the tail of their queues; audited as
        `user`'s, with `reason`."""
        ...

    async def unrouted(self) -> dict[str, int]:
        """Per route, messages acknowledged and not yet routed (their steps, such as an
        enrichment waiting for INSi, have not finished)."""
        ...

    async def record_audit(self, entry: AuditEntry) -> None:
        """Keep an audit row, synced before returning."""
        ...

    async def audit_entries(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        """Audit rows, newest first; page with `before_id`."""
        ...


class ConsoleQueries(Protocol):
    """What the console's message pages read."""

    async def find_messages(self, query: MessageQuery) -> list[MessageSummary]:
        """Messages matching `query`, newest first."""
        ...

    async def message_detail(self, message_id: int) -> MessageDetail | None:
        """One message, its outbox entries (with their bytes), their attempts and operators'
        actions."""
        ...

    async def dropped_messages(self, route: str | None, limit: int) -> list[DroppedMessage]:
        """Messages a step stopped (or no destination took), newest first."""
        ...

    async def decisions(self, message_id: int) -> list[Decision]:
        """Every step's decision about one message, in the order they were taken (payloads
        stay in the extensions' tables)."""
        ...


class LoginBrake(Protocol):
    """Wrong console passwords per user name and client, shared by the engines on the store
    and cleared by `ins-engine user unlock` without a restart."""

    async def login_failed(
        self, user: str, client: str, now: float, window_s: float
    ) -> list[float]:
        """Count one failure; the times of this user and client's failures since
        `now - window_s`, oldest first (older ones, anyone's, are forgotten)."""
        ...

    async def login_failures(self, user: str, client: str, since: float) -> list[float]:
        """The times of this user and client's failures after `since`, oldest first."""
        ...

    async def clear_login_failures(self, user: str, client: str | None = None) -> int:
        """Forget a user's failures (from one client, or every one); how many were kept."""
        ...


class Leases(Protocol):
    """What an engine's lease keeper claims, renews and gives up, and its sign of life."""

    shared: bool  # several engines may run on it at once (else: one, holding every lease)

    async def claim_lease(
        self, name: str, holder: str, lease_s: float, force: bool = False
    ) -> LeaseClaim:
        """Take the lease `name` if it is free or expired, renew it if `holder` has it;
        `force` takes it whoever holds it (a store only one engine can open)."""
        ...

    async def release_lease(self, lease: Lease) -> None:
        """Give the lease up at once (a clean stop), if `lease.holder` still has it: it
        expires now, and its next holder gets the next token."""
        ...

    async def engine_seen(self, engine: EngineState) -> None:
        """Record that an engine runs (its `seen_at` is now)."""
        ...

    async def engine_stopped(self, engine_id: str) -> None:
        """Forget an engine that stopped cleanly."""
        ...


class Coordination(Leases, Protocol):
    """How the engines (and processes) sharing a store see each other."""

    async def leases(self) -> list[LeaseState]:
        """Every lease, by name."""
        ...

    async def engines(self) -> list[EngineState]:
        """Every engine recorded, oldest start first."""
        ...

    async def put_state(self, name: str, payload: str) -> None:
        """Publish a component's state (JSON) for other processes (`queue status`)."""
        ...

    async def states(self) -> list[ComponentState]:
        """Every published component state."""
        ...

    async def watch(self, on_change: Callable[[str], None]) -> None:
        """Until cancelled, call `on_change("received")` or `on_change("routed")` when any
        engine sharing the store commits messages or outbox entries, `on_change("lease")`
        when one gives a lease up. A store one engine uses returns at once: that engine
        wakes its own router and workers."""
        ...


class Delivery(Outbox, Pruning, Protocol):
    """What the delivery service uses: its lanes' queues, and retention."""


class DeliveryStore(Delivery, Leases, Protocol):
    """What a delivery process writes through the engine: its lanes' marks, retention,
    its leases (`engine.delivery.relay`)."""


class ExtensionTables(Protocol):
    """A step kind's own tables (see `engine.store.extension`)."""

    dialect: str  # the SQL dialect of `fetch` and `execute`

    async def fetch(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        """Run a store extension's read statement."""
        ...

    async def execute(self, sql: str, parameters: Parameters = (), durable: bool = True) -> int:
        """Run a store extension's write statement in the next commit; the rows it changed.
        `durable=False` for what the engine can rebuild (a cache)."""
        ...


class Store(
    Inbox, Outbox, Operator, ConsoleQueries, LoginBrake, Coordination, ExtensionTables, Protocol
):
    """The durable store: every role, what each backend implements."""

    name: str  # what messages name the store by: a file path, or a URL without password

    async def save_counters(self, values: list[tuple[str, str, float]]) -> None:
        """Replace the saved metric counters: (name, labels as JSON, value)."""
        ...

    async def load_counters(self) -> list[tuple[str, str, float]]: ...

    async def check_writable(self) -> None:
        """Commit a one-row write, or raise: what `/readyz` asks of the store."""

    async def close(self) -> None: ...
