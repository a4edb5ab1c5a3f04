"""The store's methods, written once over the rules (`engine.store.rules`): what is left to
a backend is how it runs a flow, `_query` (a read) and `_change` (a write in a commit), and
what is truly its own: its connections and commits, and how engines hold leases on it."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, TypeVar

from engine.store import rules
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
from engine.store.extension import ExtensionSql, StoreExtension, dialect_sql
from engine.store.flows import Flow, MakeFlow, Statement, outcome_of, rows_of

T = TypeVar("T")


class SqlStore(ABC):
    """`Store` over SQL: each method runs its rule through the backend's driver."""

    dialect: str  # the key of the extensions' statements, and of `fetch` and `execute`

    def __init__(self, extensions: Sequence[StoreExtension]) -> None:
        self._extensions = [(ext, dialect_sql(ext, self.dialect)) for ext in extensions]
        self._recorders = {
            extension.kind: (extension, sql.record)
            for extension, sql in self._extensions
            if sql.record is not None
        }

    @property
    def extension_sql(self) -> list[ExtensionSql]:
        """The statements of the step kinds' store extensions, in this store's dialect."""
        return [sql for _, sql in self._extensions]

    @abstractmethod
    async def _query(self, flow: Flow[T], hot: bool = False) -> T:
        """Run a read; `hot` for the reads the engine makes for every message (indexed,
        short)."""

    @abstractmethod
    def _submit(
        self,
        make: MakeFlow[T],
        durable: bool = True,
        ordered: bool = False,
        notify: str | None = None,
    ) -> asyncio.Future[T]:
        """Queue a write for the next group commit; its future completes once committed
        (cancel it to give up before its group runs). `durable=False` for what the engine
        can rebuild after a crash (routing, delivery marks, caches); `ordered` for a write
        inserting messages or outbox entries (their ids in commit order); `notify` tells
        the other engines sharing the store what changed, once committed."""

    async def _change(
        self,
        make: MakeFlow[T],
        durable: bool = True,
        ordered: bool = False,
        notify: str | None = None,
    ) -> T:
        """`_submit`, waited for."""
        return await self._submit(make, durable, ordered, notify)

    # -- what store extensions run (engine.store.extension) -----------------------------

    async def fetch(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        return await self._query(rows_of(Statement.own(sql, parameters)))

    async def execute(self, sql: str, parameters: Parameters = (), durable: bool = True) -> int:
        make = functools.partial(outcome_of, Statement.own(sql, parameters))
        return (await self._change(make, durable=durable)).rowcount

    # -- inbox ------------------------------------------------------------------------

    async def accept(self, incoming: Incoming) -> Accepted:
        (accepted,) = await self.accept_many((incoming,))
        return accepted

    def accept_many(self, incomings: Sequence[Incoming]) -> asyncio.Future[list[Accepted]]:
        make = functools.partial(rules.accept_many, incomings, self._recorders)
        return self._submit(make, ordered=True, notify="received")

    async def received(self, after_id: int, limit: int) -> list[StoredMessage]:
        return await self._query(rules.received(after_id, limit), hot=True)

    async def route_messages(self, routed: list[RoutingResult]) -> None:
        make = functools.partial(rules.route_messages, routed, time.time(), self._recorders)
        # Not durable: after a crash the messages are still 'received' and are routed
        # again. One write, so the batch is routed all or none.
        await self._change(make, durable=False, ordered=True, notify="routed")

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
        flow = rules.pending_entries(route, destination, after_entry_id, limit, lane, lanes)
        return await self._query(flow, hot=True)

    async def mark_delivered(
        self, entry_id: int, ack_code: str, fence: Lease | None = None
    ) -> bool:
        (marked,) = await self.mark_delivered_many(((entry_id, ack_code),), fence)
        return marked

    async def mark_delivered_many(
        self, marks: Sequence[tuple[int, str]], fence: Lease | None = None
    ) -> list[bool]:
        make = functools.partial(rules.mark_delivered_many, marks, fence, time.time())
        # Not durable: lost in a crash, the messages are sent again (at-least-once).
        return await self._change(make, durable=False)

    async def record_failure(
        self,
        entry_id: int,
        error: str,
        next_attempt_at: float,
        park: bool,
        fence: Lease | None = None,
    ) -> None:
        make = functools.partial(
            rules.record_failure, entry_id, error, next_attempt_at, park, fence, time.time()
        )
        await self._change(make, durable=False)

    async def entry_status(self, entry_id: int) -> EntryStatus | None:
        return await self._query(rules.entry_status(entry_id), hot=True)

    # -- operator ---------------------------------------------------------------------

    async def queue_status(self) -> list[QueueStatus]:
        return await self._query(rules.queue_status())

    async def list_entries(
        self, status: EntryStatus, route: str | None, destination: str | None, limit: int
    ) -> list[EntrySummary]:
        return await self._query(rules.list_entries(status, route, destination, limit))

    async def entry_ids(self, status: EntryStatus, route: str, destination: str) -> list[int]:
        return await self._query(rules.entry_ids(status, route, destination))

    async def trace(self, control_id: str, route: str | None) -> list[MessageTrace]:
        return await self._query(rules.trace(control_id, route))

    async def resend(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        make = functools.partial(rules.resend, entry_ids, reason, time.time())
        return await self._change(make, ordered=True, notify="routed")

    async def skip(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        return await self._change(functools.partial(rules.skip, entry_ids, reason, time.time()))

    async def reprocess(
        self, message_ids: Sequence[int], to: Sequence[str] | None, user: str, reason: str
    ) -> list[Reprocessed]:
        make = functools.partial(rules.reprocess, message_ids, to, user, reason, time.time())
        return await self._change(make, ordered=True, notify="received")

    async def unrouted(self) -> dict[str, int]:
        return await self._query(rules.unrouted())

    async def prune(self, before: float, limit: int) -> Pruned:
        prunes = [sql.prune for _, sql in self._extensions if sql.prune is not None]
        make = functools.partial(rules.prune, before, limit, prunes)
        return await self._change(make, durable=False)

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._change(functools.partial(rules.record_audit, entry))

    async def audit_entries(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        return await self._query(rules.audit_entries(limit, before_id))

    # -- login brake -----------------------------------------------------------------

    async def login_failed(
        self, user: str, client: str, now: float, window_s: float
    ) -> list[float]:
        return await self._change(
            functools.partial(rules.login_failed, user, client, now, window_s)
        )

    async def login_failures(self, user: str, client: str, since: float) -> list[float]:
        return await self._query(rules.login_failures(user, client, since))

    async def clear_login_failures(self, user: str, client: str | None = None) -> int:
        return await self._change(functools.partial(rules.clear_login_failures, user, client))

    # -- console queries --------------------------------------------------------------

    async def find_messages(self, query: MessageQuery) -> list[MessageSummary]:
        return await self._query(rules.find_messages(query))

    async def message_detail(self, message_id: int) -> MessageDetail | None:
        return await self._query(rules.message_detail(message_id))

    async def dropped_messages(self, route: str | None, limit: int) -> list[DroppedMessage]:
        return await self._query(rules.dropped_messages(route, limit))

    async def decisions(self, message_id: int) -> list[Decision]:
        return await self._query(rules.decisions(message_id))

    # -- coordination -----------------------------------------------------------------

    async def leases(self) -> list[LeaseState]:
        return await self._query(rules.leases())

    async def engines(self) -> list[EngineState]:
        return await self._query(rules.engines())

    async def put_state(self, name: str, payload: str) -> None:
        make = functools.partial(rules.put_state, name, payload, time.time())
        await self._change(make, durable=False)  # the engine publishes it again as it changes

    async def states(self) -> list[ComponentState]:
        return await self._query(rules.states())

    # -- what the engine keeps for itself ---------------------------------------------

    async def save_counters(self, values: list[tuple[str, str, float]]) -> None:
        make = functools.partial(rules.save_counters, values, socket.gethostname())
        # Not durable: a crash costs the counts since the previous save.
        await self._change(make, durable=False)

    async def load_counters(self) -> list[tuple[str, str, float]]:
        return await self._query(rules.load_counters(socket.gethostname()))

    async def check_writable(self) -> None:
        # Not durable: a readiness probe every few seconds must not cost a sync each; a
        # full disk or a read-only store still fails the write itself.
        await self._change(functools.partial(rules.check_writable, time.time()), durable=False)
