"""The shared store: PostgreSQL, for several engines on one database.

The same rules as the SQLite store (`engine.store.rules`), in PostgreSQL's text
(`engine.store.pg_sql`); connections, group commits and the order lock that keeps ids in
commit order are `engine.store.pg_connections`'.
Leases use the database's clock, so engines on several machines need no synchronised clocks
to agree on who holds what, and what one engine commits is announced to the others on a
LISTEN/NOTIFY channel.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from engine.base.logs import get_logger
from engine.errors import StoreError
from engine.store.base import EngineState, Lease, LeaseClaim
from engine.store.extension import StoreExtension
from engine.store.flows import Flow, MakeFlow, Outcome, Statement, run_async
from engine.store.migrations import postgresql as migrations
from engine.store.pg_connections import NOTIFY_CHANNEL, Connection, Connections
from engine.store.pg_sql import queries
from engine.store.sql_store import SqlStore
from engine.store.url import display_url

log = get_logger("engine.store")
T = TypeVar("T")
WATCH_RETRY_S = 1.0
_NOW = "extract(epoch FROM clock_timestamp())"


class PostgresStore(SqlStore):
    """`Store` on a PostgreSQL database; create with `await PostgresStore.open(url)`."""

    dialect = "postgresql"
    shared = True

    def __init__(
        self, url: str, password: str | None, extensions: Sequence[StoreExtension] = ()
    ) -> None:
        super().__init__(extensions)
        self.url = url
        self.name = display_url(url)
        self._db = Connections(url, password)

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

    # -- running the store's rules (engine.store.rules) -----------------------------------

    async def _query(self, flow: Flow[T], hot: bool = False) -> T:
        """On a pooled autocommit connection: each statement sees what had committed when
        it started."""
        return await self._db.read(
            lambda connection: run_async(flow, functools.partial(execute_statement, connection))
        )

    def _submit(
        self,
        make: MakeFlow[T],
        durable: bool = True,
        ordered: bool = False,
        notify: str | None = None,
    ) -> asyncio.Future[T]:
        return self._db.write(make, durable, ordered, notify)

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


async def execute_statement(connection: Connection, statement: Statement) -> Outcome:
    """Run one statement of a flow, in PostgreSQL's text, a round trip a query (a read's:
    a group commit's writes go in rounds, `engine.store.pg_connections`)."""
    rows: list[tuple[Any, ...]] = []
    changed = 0
    for sql, parameters in queries(statement):
        cursor = await connection.execute(sql, parameters)
        if cursor.description is not None:
            rows += await cursor.fetchall()
        changed += cursor.rowcount
    return Outcome(rows, changed)
