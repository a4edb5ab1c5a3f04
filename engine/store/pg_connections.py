"""A PostgreSQL store's connections: pools, and group commits under the order lock.

Writes are group commits, as in the SQLite store: flows submitted while a transaction is in
flight run together in the next one, and their futures resolve only after its COMMIT
returned, so no message is acknowledged before the transaction holding it has committed.
A group's flows run side by side in rounds (`engine.store.flows.run_rounds`), each round one
pipeline (`engine.store.pg_pipeline`): a round trip per statement of the longest flow, plus
one for the notices and COMMIT, rather than one per statement of every flow. A group runs
without savepoints (each would cost a round trip); when one flow fails, the group is rolled
back and its flows run again one transaction each, so the bad one fails alone. A group of
only rebuildable state (routing, delivery marks, the INSi cache) commits with
`synchronous_commit = off`, as SQLite's skips its fsync.

Commit order. Readers go on "after the last id they saw" (the router through messages, a
delivery lane through its queue), so an id must never become visible after a larger one:
with several engines inserting at once, plain sequence order would let a message with a
smaller id commit later, behind a reader that has passed it, and be skipped. So every
transaction that inserts messages or outbox entries (an `ordered` job) first takes one
transaction-level advisory lock (`ORDER_LOCK`), and only then draws ids; PostgreSQL
releases the lock after the commit is visible. Ids are therefore drawn in commit order,
with no gap that could fill later (a rolled-back group leaves a gap that stays empty; the
identity columns draw one id at a time, `CACHE 1`). What this costs: engines commit
inserts one group at a time, each group holding all that arrived meanwhile.

Other statements run alone on a small pool of autocommit connections: each sees what had
committed when it started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from engine.base.logs import get_logger
from engine.errors import StoreError
from engine.store.base import Parameters
from engine.store.flows import FlowFailed, MakeFlow, Outcome, Statement, StatementFailed, run_rounds
from engine.store.pg_pipeline import run_round
from engine.store.url import display_url

log = get_logger("engine.store")
T = TypeVar("T")
Connection = psycopg.AsyncConnection[Any]

ORDER_LOCK = (0x494E53, 1)  # pg_advisory_xact_lock(int, int): "INS", id order
MAX_GROUP = 512
READERS = 4
CONNECT_TIMEOUT_S = 10
# A group never idles inside its transaction: one that does holds the order lock, so the
# server ends it rather than let every engine wait (a frozen or cut-off engine). Between
# two rounds the server waits so, the limit armed (`engine.store.pg_pipeline`).
IDLE_IN_TRANSACTION_MS = 5000
LOCK_TIMEOUT_MS = 10000
NOTIFY_CHANNEL = "ins_engine"


@dataclass(slots=True)
class _Pending:
    make: MakeFlow[Any]
    future: asyncio.Future[Any]
    durable: bool
    ordered: bool  # inserts messages or outbox entries: takes the order lock
    notify: str | None  # tells the other engines what changed, once committed


class Connections:
    """The pools of one store (a writer, a few readers, one for leases) and its group
    commits. Lease claims have a connection of their own: a slow console query holding the
    readers must not delay a renewal past its deadline and cost the engine its leases."""

    def __init__(self, url: str, password: str | None) -> None:
        self.url = url
        self.name = display_url(url)
        settings: dict[str, Any] = {
            "autocommit": True,
            "application_name": "ins-engine",
            "connect_timeout": CONNECT_TIMEOUT_S,
            # Added to the URL's own `options` (a search_path, say), not in their place.
            "options": f"{conninfo_to_dict(url).get('options', '')}"
            f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
            f" -c lock_timeout={LOCK_TIMEOUT_MS}"
            # The server notices a cut-off engine in about 10 s too, and ends its session.
            " -c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2"
            " -c tcp_keepalives_count=3".strip(),
            # A dead peer is noticed in about 10 s rather than at the kernel's 2 hours.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
        }
        if password is not None:
            settings["password"] = password
        self._settings = settings
        self._writer = self._pool(1, "writer")
        self._readers = self._pool(READERS, "readers")
        self._leases = self._pool(1, "leases")
        self._pending: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None
        self._closed = False
        self.commits = 0  # groups committed: lets a benchmark show the grouping

    def _pool(self, size: int, role: str) -> AsyncConnectionPool[Connection]:
        return AsyncConnectionPool(
            self.url,
            kwargs=self._settings,
            min_size=1,
            max_size=size,
            open=False,
            name=f"ins-engine-{role}",
            timeout=CONNECT_TIMEOUT_S,
        )

    async def open(self) -> None:
        await self._writer.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        await self._readers.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        await self._leases.open(wait=True, timeout=CONNECT_TIMEOUT_S)

    async def connect(self) -> Connection:
        """One connection of its own (migrations, notifications), with the pool's settings."""
        try:
            return await psycopg.AsyncConnection.connect(self.url, **self._settings)
        except psycopg.Error as error:
            raise StoreError(f"cannot connect to the store {self.name}: {_reason(error)}") from None

    # -- group commits ------------------------------------------------------------------

    def write(
        self,
        make: MakeFlow[T],
        durable: bool = True,
        ordered: bool = False,
        notify: str | None = None,
    ) -> asyncio.Future[T]:
        """Queue the flow `make` makes for the next group commit (made again should the
        group fail); its future completes once committed. `ordered` for one inserting
        messages or outbox entries, `notify` to tell other engines what changed once
        committed."""
        if self._closed:
            raise StoreError("store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(make, future, durable, ordered, notify))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_groups(), name="store-committer")
        return future

    async def _commit_groups(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                # A caller that stopped waiting (the store timeout) was answered AE: its
                # job is not stored, so its resend is the only copy.
                group = [pending for pending in group if not pending.future.done()]
                if group:
                    await self._commit(group)
        finally:
            self._committer = None

    async def _commit(self, group: list[_Pending]) -> None:
        try:
            async with self._writer.connection() as connection:
                try:
                    results = [(True, value) for value in await _transaction(connection, group)]
                except FlowFailed:
                    results = await _one_by_one(connection, group)
                else:
                    self.commits += 1
        except (psycopg.Error, PoolTimeout) as error:
            results = [(False, _commit_failure(error))] * len(group)
        for pending, (ok, value) in zip(group, results, strict=True):
            if pending.future.done():
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)

    async def read(self, job: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `job` on a pooled autocommit connection (reads)."""
        return await self._run_on(self._readers, job)

    async def run_for_leases(self, sql: str, parameters: Parameters = ()) -> list[Any]:
        """One statement on the leases' own connection (claims, releases, signs of life),
        committed alone; its rows."""

        async def job(connection: Connection) -> list[Any]:
            return await (await connection.execute(sql, parameters)).fetchall()

        return await self._run_on(self._leases, job)

    async def _run_on(
        self, pool: AsyncConnectionPool[Connection], job: Callable[[Connection], Awaitable[T]]
    ) -> T:
        if self._closed:
            raise StoreError("store is closed")
        try:
            async with pool.connection() as connection:
                return await job(connection)
        except (psycopg.Error, PoolTimeout) as error:
            raise StoreError(f"store read failed: {type(error).__name__}") from None

    async def close(self) -> None:
        """Finish every queued write, then close the connections."""
        if self._closed:
            return
        self._closed = True
        while self._committer is not None:
            await asyncio.shield(self._committer)
        await self._writer.close()
        await self._readers.close()
        await self._leases.close()


async def _transaction(connection: Connection, group: list[_Pending]) -> list[Any]:
    """Run a group's flows in one transaction, in rounds, and commit it; `FlowFailed` if a
    flow raised or one of its statements failed. What comes before the flows (BEGIN, the
    order lock) goes in their first round, and what comes after (the notices, COMMIT) in a
    round of its own once every flow has finished: the order lock is held no longer than
    needed, and the transaction commits only what every flow finished."""
    opening = [Statement.own("BEGIN")]
    if not any(pending.durable for pending in group):
        opening.append(Statement.own("SET LOCAL synchronous_commit = off"))
    if any(pending.ordered for pending in group):
        opening.append(Statement.own("SELECT pg_advisory_xact_lock({}, {})".format(*ORDER_LOCK)))
    channels = sorted({pending.notify for pending in group if pending.notify})
    closing = [Statement.own(f"NOTIFY {NOTIFY_CHANNEL}, '{channel}'") for channel in channels]
    closing.append(Statement.own("COMMIT"))

    async def flows_round(statements: list[Statement]) -> list[Outcome]:
        nonlocal opening
        before, opening = opening, []
        return await _round(connection, statements, before)

    try:
        results = await run_rounds([pending.make() for pending in group], flows_round)
        await _round(connection, [], [*opening, *closing])  # BEGIN too, if no flow had a statement
    except BaseException:
        if not connection.closed:
            with contextlib.suppress(psycopg.Error):
                await connection.execute(b"ROLLBACK")
        raise
    return results


async def _round(
    connection: Connection, statements: list[Statement], own: Sequence[Statement]
) -> list[Outcome]:
    """One round: the transaction's `own` statements, then the flows' `statements`; their
    outcomes. A failure of the transaction's own is the group's, not a flow's."""
    try:
        outcomes = await run_round(connection, [*own, *statements])
    except StatementFailed as failed:
        if failed.position < len(own):
            raise failed.error from None
        raise StatementFailed(failed.position - len(own), failed.error) from None
    return outcomes[len(own) :]


async def _one_by_one(connection: Connection, group: list[_Pending]) -> list[tuple[bool, Any]]:
    """A failed group's jobs, each in a transaction of its own. Should the connection fail
    on the way, the jobs already committed keep their results; only the rest fail."""
    results: list[tuple[bool, Any]] = []
    for pending in group:
        try:
            (value,) = await _transaction(connection, [pending])
        except FlowFailed as failed:
            results.append((False, failed.error))
        except psycopg.Error as error:
            return results + [(False, _commit_failure(error))] * (len(group) - len(results))
        else:
            results.append((True, value))
    return results


def _commit_failure(error: Exception) -> StoreError:
    log.error("store commit failed", error=type(error).__name__)
    return StoreError(f"store commit failed: {type(error).__name__}")


def _reason(error: psycopg.Error) -> str:
    """What libpq says of a failed connection (host, port, role, database, authentication:
    no patient data), on one line."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__
