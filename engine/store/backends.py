"""Which backend a store URL names, and opening or migrating either the same way.

`sqlite:///path` is one file for one engine; `postgresql://USER@HOST:PORT/DB` a database
several engines share. The password of a PostgreSQL store is never in the URL: it comes
from the environment variable the configuration names (`store_password_env`), or libpq
finds it itself (`PGPASSWORD`, `~/.pgpass`).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from engine.errors import StoreError
from engine.store.extension import ExtensionSql, StoreExtension, dialect_sql
from engine.store.lock import EngineLock
from engine.store.migrations import Applied
from engine.store.migrations import postgresql as pg_migrations
from engine.store.migrations import sqlite as sqlite_migrations
from engine.store.postgresql import PostgresStore
from engine.store.sqlite import SqliteStore
from engine.store.sqlite_wal import LIMIT_MB
from engine.store.url import is_postgresql, sqlite_path

OpenStore = SqliteStore | PostgresStore


def password(variable: str | None) -> str | None:
    """The PostgreSQL password from the variable `store_password_env` names, if any."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if value is None:
        raise StoreError(
            f"the environment variable {variable} (engine.store_password_env) is not set: "
            "it must hold the store's password"
        )
    return value


async def open_store(
    url: str,
    secret: str | None = None,
    extensions: Sequence[StoreExtension] = (),
    exclusive: bool = False,
    wal_limit_mb: int = LIMIT_MB,
) -> OpenStore:
    """Open the store a URL names, with the tables of the step kinds' `extensions`; a new
    one is created at the latest schema version, an existing one of another version is
    refused (`StoreVersionError`). `exclusive`: for an engine, which holds a SQLite store's
    lock (`engine.store.lock`) while it runs and keeps its WAL within `wal_limit_mb`."""
    if is_postgresql(url):
        return await PostgresStore.open(url, secret, extensions)
    path = sqlite_path(url)
    assert path is not None  # the configuration checks the URL
    return await SqliteStore.open(path, extensions, exclusive, wal_limit_mb)


async def existing_store(
    url: str, secret: str | None = None, extensions: Sequence[StoreExtension] = ()
) -> OpenStore:
    """Open a store an engine has created (for operator commands)."""
    path = sqlite_path(url)
    if path is not None:
        _require_file(path, "has an engine run with this configuration?")
    return await open_store(url, secret, extensions)


async def migrate(
    url: str, secret: str | None = None, extensions: Sequence[StoreExtension] = ()
) -> Applied:
    """Bring a store to the latest schema version (creating it in an empty database), with
    the tables of the step kinds' `extensions`."""
    if is_postgresql(url):
        store = PostgresStore(url, secret, extensions)
        connection = await store.connect()
        try:
            return await pg_migrations.migrate(connection, store.extension_sql)
        finally:
            await connection.close()
    path = sqlite_path(url)
    assert path is not None
    _require_file(path, "the engine creates it at its first start")
    statements = [dialect_sql(extension, SqliteStore.dialect) for extension in extensions]
    return await asyncio.to_thread(_migrate_sqlite, path, statements)


def _require_file(path: str, hint: str) -> None:
    if not Path(path).is_file():
        raise StoreError(f"no store at {path}: {hint}")


def _migrate_sqlite(path: str, extensions: Sequence[ExtensionSql]) -> Applied:
    """Under the store's engine lock: never while the engine runs on it."""
    lock = EngineLock.acquire(path)
    try:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA busy_timeout = 10000")
            connection.execute("PRAGMA foreign_keys = ON")
            return sqlite_migrations.migrate(connection, extensions)
        finally:
            connection.close()
    finally:
        lock.release()


def latest_version() -> int:
    """The schema version this engine writes (the same number for both backends)."""
    assert pg_migrations.LATEST == sqlite_migrations.LATEST
    return sqlite_migrations.LATEST
