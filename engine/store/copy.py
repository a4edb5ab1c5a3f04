"""Copying a whole store to a new one: `ins-engine store copy FROM TO`.

What an installation moving from SQLite to PostgreSQL (or back) must keep: messages with
their ids, outbox entries with their ids (an entry's id is its position in its queue, so
every queue keeps its order and its head), every step's decision, the operator audit with
the failed delivery attempts, and the tables the step kinds' store extensions name (the INS
step's identity outcomes and INSi cache). Leases, the engines table and the
engines' published state are not copied: they describe engines running on the old store.
The source must be at this engine's schema version (migrate it first) and no engine may
run on it; the target must hold no rows: a copy never merges two installations. The source
is read in one snapshot and the target written in one transaction, so a copy that fails
leaves the target empty and may simply be run again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from engine.base.folders import make_folders
from engine.errors import StoreError
from engine.store.extension import ExtensionSql, StoreExtension, dialect_sql
from engine.store.lanes import lane_hash
from engine.store.lock import EngineLock
from engine.store.migrations import check_version
from engine.store.migrations import postgresql as pg_migrations
from engine.store.migrations import sqlite as sqlite_migrations
from engine.store.postgresql import PostgresStore
from engine.store.sqlite import SqliteStore, make_store_file
from engine.store.url import display_url, is_postgresql, sqlite_path

BATCH = 1000
ENGINE_SEEN_S = 60.0  # an engine renews its leases every few seconds: silent longer, it is gone


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]  # the first is the key rows are read in the order of
    identity: bool = False  # its key is drawn by the store: PostgreSQL's counter follows
    flags: tuple[str, ...] = ()  # true/false columns: SQLite keeps 0/1, PostgreSQL booleans

    @property
    def column_list(self) -> str:
        """The columns quoted (`user` is a reserved word in PostgreSQL)."""
        return ", ".join(f'"{column}"' for column in self.columns)


TABLES = (
    Table(
        "messages",
        tuple(
            """id received_at route peer sending_application sending_facility control_id
            message_type content_hash size raw ack status reprocess_of reprocess_to patient_id
            patient_name birth_date""".split()
        ),
        identity=True,
    ),
    Table(
        "outbox",
        tuple(
            """id message_id route destination payload patient_key status attempts
            next_attempt_at last_error last_ack_code updated_at delivered_at resend_of""".split()
        ),
        identity=True,
    ),
    Table(
        "step_decisions",
        tuple("id message_id recorded_at destination step kind outcome detail".split()),
        identity=True,
    ),
    Table("operator_actions", ("id", "at", "entry_id", "action", "reason"), identity=True),
    Table("audit", ("id", "at", "user", "action", "target", "detail"), identity=True),
    Table(
        "delivery_failures",
        ("id", "entry_id", "at", "error", "parked"),
        identity=True,
        flags=("parked",),
    ),
)


class _Side(Protocol):
    """One store's tables, as the copy reads or writes them."""

    name: str

    def rows(self, table: Table) -> AsyncIterator[list[tuple[Any, ...]]]: ...

    async def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None: ...

    async def count(self, table: Table) -> int: ...

    async def finish(self, commit: bool) -> None: ...


async def copy_store(
    source_url: str,
    target_url: str,
    secret: str | None,
    extensions: Sequence[StoreExtension] = (),
) -> dict[str, int]:
    """Copy every row of the source into the empty target; the rows copied per table."""
    if display_url(source_url) == display_url(target_url):
        raise StoreError("FROM and TO are the same store")
    tables = [
        *TABLES,
        *(
            Table(name, columns)
            for extension in extensions
            for name, columns in dialect_sql(extension, SqliteStore.dialect).copied
        ),
    ]
    source = await _open(source_url, secret, extensions, reading=True)
    try:
        target = await _open(target_url, secret, extensions, reading=False)
        try:
            for table in tables:
                if found := await target.count(table):
                    raise StoreError(
                        f"the target store {target.name} is not empty ({found} rows in "
                        f"{table.name}): copy only into a new store"
                    )
            copied = {}
            for table in tables:
                copied[table.name] = 0
                async for batch in source.rows(table):
                    await target.insert(table, batch)
                    copied[table.name] += len(batch)
        except BaseException:
            await target.finish(commit=False)
            raise
        await target.finish(commit=True)
    finally:
        await source.finish(commit=False)
    return copied


async def _open(
    url: str, secret: str | None, extensions: Sequence[StoreExtension], reading: bool
) -> _Side:
    if is_postgresql(url):
        store = PostgresStore(url, secret, extensions)
        connection = await store.connect()
        try:
            found = await pg_migrations.version(connection)
            if found is None and not reading:
                await pg_migrations.migrate(connection, store.extension_sql)
            else:
                _check(display_url(url), found, pg_migrations.LATEST)
                await _no_engine_running(connection, display_url(url))
            isolation = "REPEATABLE READ" if reading else "READ COMMITTED"
            await connection.execute(f"BEGIN ISOLATION LEVEL {isolation}")
        except BaseException:
            await connection.close()
            raise
        return _Postgres(display_url(url), connection)
    path = sqlite_path(url)
    assert path is not None
    statements = [dialect_sql(extension, SqliteStore.dialect) for extension in extensions]
    return _Sqlite.open(path, statements, reading)


async def _no_engine_running(connection: psycopg.AsyncConnection[Any], name: str) -> None:
    """Refuse a store engines still run on (seen within the last `ENGINE_SEEN_S`)."""
    cursor = await connection.execute(
        "SELECT id FROM engines WHERE seen_at > extract(epoch FROM clock_timestamp()) - %s",
        (ENGINE_SEEN_S,),
    )
    running = [row[0] for row in await cursor.fetchall()]
    if running:
        raise StoreError(f"engines run on {name} ({', '.join(running)}): stop them before copying")


def _check(name: str, found: int | None, latest: int) -> None:
    """A source (or non-empty target) must be a store at this engine's version."""
    if found is None:
        raise StoreError(f"no store in {name}")
    check_version(name, found, latest)


class _Sqlite:
    def __init__(self, name: str, connection: sqlite3.Connection, lock: EngineLock) -> None:
        self.name = name
        self._connection = connection
        self._lock = lock

    @classmethod
    def open(cls, path: str, extensions: Sequence[ExtensionSql], reading: bool) -> _Sqlite:
        """Hold the store's engine lock while copying: no engine runs on it meanwhile."""
        if reading and not Path(path).is_file():
            raise StoreError(f"no store at {path}")
        if not reading:
            make_folders(Path(path).parent)
            make_store_file(path)  # not SQLite's 0644: the copy holds patient data
        lock = EngineLock.acquire(path)
        try:
            connection = sqlite3.connect(path, isolation_level=None)
            connection.execute("PRAGMA busy_timeout = 10000")
            found = sqlite_migrations.version(connection)
            if found is None and not reading:
                sqlite_migrations.migrate(connection, extensions)
            else:
                _check(path, found, sqlite_migrations.LATEST)
            connection.execute("BEGIN" if reading else "BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise
        return cls(path, connection, lock)

    async def rows(self, table: Table) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = self._connection.execute(
            f"SELECT {table.column_list} FROM {table.name} ORDER BY {table.columns[0]}"  # noqa: S608
        )
        while batch := cursor.fetchmany(BATCH):
            yield batch

    async def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(table.columns))
        self._connection.executemany(
            f"INSERT INTO {table.name} ({table.column_list}) VALUES ({marks})",  # noqa: S608
            rows,
        )

    async def count(self, table: Table) -> int:
        sql = f"SELECT count(*) FROM {table.name}"  # noqa: S608 - constant
        return int(self._connection.execute(sql).fetchone()[0])

    async def finish(self, commit: bool) -> None:
        if self._connection.in_transaction:
            self._connection.execute("COMMIT" if commit else "ROLLBACK")
        self._connection.close()
        self._lock.release()


class _Postgres:
    def __init__(self, name: str, connection: psycopg.AsyncConnection[Any]) -> None:
        self.name = name
        self._connection = connection

    async def rows(self, table: Table) -> AsyncIterator[list[tuple[Any, ...]]]:
        key = table.columns[0]
        async with self._connection.cursor(name=f"copy_{table.name}") as cursor:
            await cursor.execute(
                f"SELECT {table.column_list} FROM {table.name} ORDER BY {key}"  # noqa: S608
            )
            while batch := await cursor.fetchmany(BATCH):
                yield [_from_postgres(row) for row in batch]

    async def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        columns = list(table.columns)
        for flag in table.flags:
            at = columns.index(flag)
            rows = [(*row[:at], bool(row[at]), *row[at + 1 :]) for row in rows]
        if table.name == "outbox":  # the lane of each entry, which SQLite computes itself
            columns.append("lane_hash")
            key = table.columns.index("patient_key")
            rows = [(*row, lane_hash(row[key])) for row in rows]
        marks = ", ".join(["%s"] * len(columns))
        quoted = ", ".join(f'"{column}"' for column in columns)
        async with self._connection.cursor() as cursor:
            await cursor.executemany(
                f"INSERT INTO {table.name} ({quoted}) VALUES ({marks})",  # noqa: S608 - constant
                rows,
            )
            if table.identity:
                await cursor.execute(
                    f"""SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), max(id))
                        FROM {table.name} HAVING max(id) IS NOT NULL"""  # noqa: S608 - constant
                )

    async def count(self, table: Table) -> int:
        cursor = await self._connection.execute(
            f"SELECT count(*) FROM {table.name}"  # noqa: S608 - constant
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def finish(self, commit: bool) -> None:
        if not self._connection.closed:
            await self._connection.execute("COMMIT" if commit else "ROLLBACK")
            await self._connection.close()


def _from_postgres(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """bytea arrives as bytes already; memoryview (a binary cursor) is made bytes too."""
    return tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)
