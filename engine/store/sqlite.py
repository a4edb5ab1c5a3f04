"""The embedded store: one SQLite file in WAL mode, written with group commits.

What the store does is its rules' (`engine.store.rules`, run here in SQLite's text,
`engine.store.sqlite_sql`); this module is how they run on one file. A write is a job (a
function of the connection) with a future. Jobs submitted while a commit is in flight wait
together; when it ends, all of them run in one transaction and one COMMIT — one fsync —
makes them durable; only then are their futures resolved. A burst of messages therefore
pays one fsync per group, and no message is acknowledged before the transaction holding it
has committed. Should a job fail, the group is rolled back and run again with each job in a
savepoint of its own, so that the failing job fails alone; the common case pays for no
savepoint.

The jobs' statements run on the event loop's thread (each takes tens of microseconds); only
the COMMIT, which waits for the disk, runs on the committer thread, so the loop goes on
receiving and routing meanwhile (with hundreds of microseconds of work a message, that
overlap beats committing on the loop). The reads the engine makes for every message (the
router's inbox, the delivery lanes' queues) run on the loop, on a connection of their own
that WAL lets read beside the writer; operator and console queries, which may scan, run on a
reader thread. The engine's store keeps its WAL small (`engine.store.sqlite_wal`): a thread
of its own copies it back, and the writer finishes the job between two group commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.base.folders import make_folders
from engine.base.logs import get_logger
from engine.errors import StoreError, StoreFileFault
from engine.store.base import EngineState, Lease, LeaseClaim, Parameters
from engine.store.extension import StoreExtension
from engine.store.flows import NOTHING, Flow, MakeFlow, Outcome, Statement, run, text_of
from engine.store.lanes import lane_of
from engine.store.lock import EngineLock
from engine.store.migrations import sqlite as migrations
from engine.store.sql_store import SqlStore
from engine.store.sqlite_file import WATCH_S, Fault, StoreFile
from engine.store.sqlite_sql import STATEMENTS, EachRow, Values
from engine.store.sqlite_wal import (
    BUSY_TIMEOUT_MS,
    LIMIT_MB,
    MB,
    WalKeeper,
    checkpoint_writer,
    prepare_writer,
    wal_bytes,
    wal_path,
)

log = get_logger("engine.store")
T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
MAX_GROUP = 512
STORE_MODE = 0o600


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


def make_store_file(path: str) -> None:
    """Create the store file 0600 before SQLite does, or make an existing one 0600: it
    holds patient data. SQLite gives its -wal, -shm and -journal files the same mode."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, STORE_MODE))
    os.chmod(path, STORE_MODE)


class SqliteStore(SqlStore):
    """`Store` on a SQLite file; create with `await SqliteStore.open(path, extensions)`."""

    dialect = "sqlite"
    shared = False  # one engine per file (its lock says so): it holds every lease

    def __init__(
        self,
        path: str,
        extensions: Sequence[StoreExtension] = (),
        exclusive: bool = False,
        wal_limit_mb: int = LIMIT_MB,
    ) -> None:
        super().__init__(extensions)
        self.path = path
        self.name = path
        self._exclusive = exclusive
        self._lock: EngineLock | None = None
        self._pending: list[tuple[Job, asyncio.Future[Any], bool]] = []
        self._committing = False
        self._commits: queue.SimpleQueue[_Commit | _Checkpoint | _WriteBack | None] = (
            queue.SimpleQueue()
        )
        self._committer = threading.Thread(
            target=self._commit_loop, name="store-committer", daemon=True
        )
        self._flush_scheduled = False
        self._synchronous = "FULL"  # what _connect set
        self._drained = asyncio.Event()  # set when no write is pending
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="store-reader")
        self._wal_limit = wal_limit_mb * MB
        # Only the engine's store checkpoints: its writer is the one that can pause for it.
        self._wal = WalKeeper(path, self._wal_limit, self._checkpoint) if exclusive else None
        self._checkpoint_asked: _Checkpoint | None = None
        # The engine's store watches its file (engine.store.sqlite_file).
        self._file: StoreFile | None = None
        self._seen: Fault | None = None  # the fault last logged
        self._lasting: Fault | None = None  # deleted or replaced: until a restart
        self._write_back_asked = False
        self._written_back: EngineLock | None = None  # the lock on the file written back
        self._watch_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_connection: sqlite3.Connection | None = None
        self._loop_read_connection: sqlite3.Connection | None = None
        self._write_connection: sqlite3.Connection | None = None
        self._closed = False
        self.commits = 0  # groups committed: lets a benchmark show the grouping

    @classmethod
    async def open(
        cls,
        path: str,
        extensions: Sequence[StoreExtension] = (),
        exclusive: bool = False,
        wal_limit_mb: int = LIMIT_MB,
    ) -> SqliteStore:
        """Open (or create) the store file, with the tables of `extensions`. `exclusive` is
        for the engine that serves it: it holds the store's engine lock (`engine.store.lock`)
        until `close`, and a second engine gets `StoreInUse`; operator commands open the
        store beside it. The engine's store keeps its WAL within about `wal_limit_mb`."""
        store = cls(path, extensions, exclusive, wal_limit_mb)
        store._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(store._prepare)
        except (OSError, sqlite3.Error) as error:
            store._release_lock()
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise StoreError(f"cannot open the store {path}: {reason}") from None
        except BaseException:
            store._release_lock()
            raise
        store._committer.start()
        if store._wal is not None:
            store._wal.start()
        if store._file is not None:
            store._watch_timer = store._loop.call_later(WATCH_S, store._watch)
        return store

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _prepare(self) -> None:
        make_folders(Path(self.path).parent)
        make_store_file(self.path)  # the engine's lock is taken on the file itself
        if self._exclusive:
            self._lock = EngineLock.acquire(self.path)
            self._file = StoreFile(self.path)
        connection = _connect(self.path)
        if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise StoreError(f"cannot put {self.path} in WAL mode")
        migrations.prepare(connection, self.path, self.extension_sql)
        prepare_writer(connection, self._wal_limit)
        # A statement's RETURNING rows are kept in a temporary table: in memory, not in a
        # file created and removed again for each statement (about 40 us of system time).
        connection.execute("PRAGMA temp_store = MEMORY")
        self._write_connection = connection
        self._read_connection = _reading(_connect(self.path))
        self._loop_read_connection = _reading(_connect(self.path))

    # -- checkpoints the writer runs (engine.store.sqlite_wal) ----------------------------

    def wal_bytes(self) -> int:
        """The size of the WAL file, for `/metrics`."""
        return wal_bytes(wal_path(self.path))

    def _checkpoint(self, mode: str) -> None:
        """On the checkpointing thread: have the writer run a checkpoint between two group
        commits, and wait for it."""
        asked = _Checkpoint(mode, threading.Event())
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._ask_checkpoint, asked)
        except RuntimeError:  # the loop is closed: nothing writes any more
            return
        asked.done.wait()

    def _ask_checkpoint(self, asked: _Checkpoint) -> None:
        if asked.mode == "TRUNCATE" and self._pending:  # not idle after all
            asked.done.set()
            return
        self._checkpoint_asked = asked
        self._schedule_flush(asyncio.get_running_loop())

    def _writer_free(self) -> None:
        """A checkpoint or a write back ended on the committer thread."""
        self._committing = False
        self._schedule_flush(asyncio.get_running_loop())

    # -- the store file under the engine's feet (engine.store.sqlite_file) ----------------

    def _watch(self) -> None:
        """Every WATCH_S, traffic or not: a file deleted or replaced is written back
        within a second, before anyone kills the engine (a failed write back is tried
        again here)."""
        self._refusal()
        if self._lasting is not None and self._written_back is None and not self._committing:
            self._write_back_asked = True  # (not while the writer is busy: maybe writing back)
        self._schedule_flush(asyncio.get_running_loop())
        assert self._loop is not None
        self._watch_timer = self._loop.call_later(WATCH_S, self._watch)

    def _refusal(self) -> StoreFileFault | None:
        """Why no write may commit now, or None; asks for the write back a deleted or
        replaced file needs as soon as it is seen."""
        if self._file is None:
            return None
        fault = self._lasting or self._file.fault()
        if fault != self._seen:
            if fault is None:
                log.warning("store file writable again", path=self.path)
            else:
                log.error("store file changed under the engine", reason=fault.what, path=self.path)
            self._seen = fault
        if fault is None:
            return None
        if fault.lasting and self._lasting is None:
            self._lasting = fault
            self._write_back_asked = True
        return self._file.refusal(fault, self._written_back is not None)

    def _write_back(self, connection: sqlite3.Connection, fault: Fault) -> None:
        """On the committer thread, between two group commits."""
        assert self._file is not None
        try:
            lock = self._file.write_back(connection, fault)
        except (OSError, sqlite3.Error) as error:  # asked again at the next watch
            reason = getattr(error, "strerror", None) or type(error).__name__
            log.error("store file not written back", path=self.path, error=reason)
            return
        self._written_back = lock
        log.warning("store file written back: restart the engine", path=self.path)

    # -- group commits ------------------------------------------------------------------

    def _queue(
        self, job: Callable[[sqlite3.Connection], T], durable: bool = True
    ) -> asyncio.Future[T]:
        """Queue `job` for the next group commit; its future completes once committed.
        `durable=False` is for state the engine can rebuild after a power loss (routing,
        delivery marks, caches): a group of only such jobs commits without an fsync; the
        next durable commit, or a checkpoint, syncs it. The WAL is written in order, so a
        power loss can only lose the latest of them."""
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((job, future, durable))
        self._schedule_flush(loop)
        return future

    async def _write(self, job: Callable[[sqlite3.Connection], T], durable: bool = True) -> T:
        """`_queue`, waited for."""
        return await self._queue(job, durable)

    @property
    def _busy(self) -> bool:
        return (
            self._committing
            or self._flush_scheduled
            or bool(self._pending)
            or self._checkpoint_asked is not None
            or self._write_back_asked
        )

    def _schedule_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit at the end of this turn of the loop what its callbacks have queued."""
        waiting = self._pending or self._checkpoint_asked is not None or self._write_back_asked
        if not self._committing and not self._flush_scheduled and waiting:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        elif not self._busy:
            self._drained.set()

    def _flush(self) -> None:
        self._flush_scheduled = False
        refusal = self._refusal()  # before each group: no AA once the file is gone
        if self._write_back_asked:  # before the next group, which is then refused
            assert self._lasting is not None
            self._committing = True
            self._commits.put(_WriteBack(self._lasting))
            self._write_back_asked = False
            return
        if self._checkpoint_asked is not None:  # before the next group, which then waits
            self._committing = True
            self._commits.put(self._checkpoint_asked)
            self._checkpoint_asked = None
            return
        group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
        # A caller that stopped waiting (the store timeout) was answered AE: not stored.
        group = [item for item in group if not item[1].done()]
        if refusal is not None or not group:
            self._settle(group, [(False, refusal)] * len(group))
            self._schedule_flush(asyncio.get_running_loop())
            return
        connection = self._write_connection
        assert connection is not None
        synchronous = "FULL" if any(durable for _, _, durable in group) else "NORMAL"
        try:
            if synchronous != self._synchronous:
                connection.execute(f"PRAGMA synchronous = {synchronous}")
                self._synchronous = synchronous
            results = _run_group(connection, [job for job, _, _ in group])
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            self._settle(group, [(False, _commit_failure(error))] * len(group))
            self._schedule_flush(asyncio.get_running_loop())
            return
        self._committing = True
        self._commits.put(_Commit(asyncio.get_running_loop(), group, results))

    def _commit_loop(self) -> None:
        """The committer thread: COMMIT, then hand the group back to the loop at once."""
        connection = self._write_connection
        assert connection is not None
        while (commit := self._commits.get()) is not None:
            if isinstance(commit, _Checkpoint | _WriteBack):
                if isinstance(commit, _Checkpoint):
                    checkpoint_writer(connection, commit.mode)
                    commit.done.set()
                else:
                    self._write_back(connection, commit.fault)
                assert self._loop is not None  # set by `open`
                self._loop.call_soon_threadsafe(self._writer_free)
                continue
            error: BaseException | None = None
            try:
                connection.execute("COMMIT")
            except sqlite3.Error as failure:
                error = failure
            commit.loop.call_soon_threadsafe(self._committed, error, commit.group, commit.results)
            if self._wal is not None:
                self._wal.committed()

    def _committed(
        self,
        error: BaseException | None,
        group: list[tuple[Job, asyncio.Future[Any], bool]],
        results: list[tuple[bool, Any]],
    ) -> None:
        self._committing = False
        if error is None:
            self.commits += 1
        else:
            with contextlib.suppress(sqlite3.Error):
                self._write_connection.execute("ROLLBACK")  # type: ignore[union-attr]
            results = [(False, _commit_failure(error))] * len(group)
        self._settle(group, results)
        self._schedule_flush(asyncio.get_running_loop())

    @staticmethod
    def _settle(
        group: list[tuple[Job, asyncio.Future[Any], bool]], results: list[tuple[bool, Any]]
    ) -> None:
        for (_, future, _), (ok, value) in zip(group, results, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _read_now(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """A read the engine makes for every message: indexed, short, run on the loop."""
        if self._closed:
            raise StoreError("store is closed")
        connection = self._loop_read_connection
        assert connection is not None
        return job(connection)

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")
        connection = self._read_connection
        assert connection is not None
        return await asyncio.get_running_loop().run_in_executor(self._reader, job, connection)

    async def close(self) -> None:
        """Finish every queued write, then close the connections (the last one to close
        checkpoints what is left of the WAL)."""
        if self._closed:
            return
        self._closed = True
        if self._watch_timer is not None:
            self._watch_timer.cancel()
        if self._wal is not None:  # first: the writer serves the checkpoint it may be asking
            await asyncio.to_thread(self._wal.stop)
        while self._busy:
            self._drained.clear()
            await self._drained.wait()
        self._commits.put(None)
        await asyncio.to_thread(self._committer.join)
        if self._write_connection is not None:
            self._write_connection.close()
        if self._loop_read_connection is not None:
            self._loop_read_connection.close()
        await asyncio.get_running_loop().run_in_executor(self._reader, self._close_reader)
        self._reader.shutdown(wait=True)
        self._release_lock()  # last: another engine may start once everything is written
        if self._written_back is not None:
            self._written_back.release()

    def _close_reader(self) -> None:
        if self._read_connection is not None:
            self._read_connection.close()

    # -- running the store's rules (engine.store.rules) -----------------------------------

    async def _query(self, flow: Flow[T], hot: bool = False) -> T:
        def job(connection: sqlite3.Connection) -> T:
            return run(flow, functools.partial(_execute, connection))

        return self._read_now(job) if hot else await self._read(job)

    def _submit(
        self,
        make: MakeFlow[T],
        durable: bool = True,
        ordered: bool = False,
        notify: str | None = None,
    ) -> asyncio.Future[T]:
        """A write in the next group commit; one writer commits in id order, and no other
        engine needs telling."""
        return self._queue(
            lambda connection: run(make(), functools.partial(_execute, connection)), durable
        )

    # -- leases and engines (engine.coordination.leases) ----------------------------------------

    async def claim_lease(
        self, name: str, holder: str, lease_s: float, force: bool = False
    ) -> LeaseClaim:
        def job(connection: sqlite3.Connection) -> LeaseClaim:
            now = time.time()
            row = connection.execute(
                "SELECT holder, token, since, expires_at FROM leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] != holder and row[3] > now and not force:
                return LeaseClaim(None, row[0], row[3] - now)
            if row is None:
                token, since = 1, now
            elif row[0] == holder:
                token, since = row[1], row[2]
            else:
                token, since = row[1] + 1, now
            connection.execute(
                """INSERT OR REPLACE INTO leases (name, holder, token, since, renewed_at,
                       expires_at) VALUES (?, ?, ?, ?, ?, ?)""",
                (name, holder, token, since, now, now + lease_s),
            )
            return LeaseClaim(Lease(name, holder, token, since), holder, lease_s)

        return await self._write(job, durable=False)

    async def release_lease(self, lease: Lease) -> None:
        await self._write(
            lambda connection: connection.execute(
                """UPDATE leases SET expires_at = ?
                   WHERE name = ? AND holder = ? AND token = ?""",
                (time.time(), lease.name, lease.holder, lease.token),
            )
        )

    async def engine_seen(self, engine: EngineState) -> None:
        await self._write(
            lambda connection: connection.execute(
                """INSERT OR REPLACE INTO engines (id, host, pid, started_at, seen_at)
                   VALUES (?, ?, ?, ?, ?)""",
                (engine.engine_id, engine.host, engine.pid, engine.started_at, time.time()),
            ),
            durable=False,
        )

    async def engine_stopped(self, engine_id: str) -> None:
        await self._write(
            lambda connection: connection.execute("DELETE FROM engines WHERE id = ?", (engine_id,))
        )

    async def watch(self, on_change: Callable[[str], None]) -> None:
        """Nothing to watch: one engine uses the file, and wakes its own tasks."""


def _execute(connection: sqlite3.Connection, statement: Statement) -> Outcome:
    """Run one statement of a flow, in SQLite's text."""
    sql = text_of(STATEMENTS, statement)
    if statement.batch is not None:
        if not statement.batch:
            return NOTHING
        if isinstance(sql, Values):
            return _execute_values(connection, sql, statement.batch)
        if isinstance(sql, EachRow):
            own = tuple(statement.parameters)
            rows = [
                found
                for row in statement.batch
                for found in connection.execute(sql, (*row, *own)).fetchall()
            ]
            return Outcome(rows, len(rows))
        return Outcome([], connection.executemany(sql, statement.batch).rowcount)
    cursor = connection.execute(sql, statement.parameters)
    rows = cursor.fetchall()
    return Outcome(rows, cursor.rowcount)


def _execute_values(
    connection: sqlite3.Connection, sql: Values, batch: Sequence[Parameters]
) -> Outcome:
    """A batch as few statements over its rows, in their order: their returned rows."""
    rows: list[tuple[Any, ...]] = []
    width = len(batch[0])
    start = 0
    for size in sql.chunks(len(batch)):
        chunk = batch[start : start + size]
        start += size
        flat = [value for row in chunk for value in row]
        rows += connection.execute(sql.text(size, width), flat).fetchall()
    return Outcome(rows, len(rows))


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """A checkpoint the writer runs between two group commits; `done` once it ran."""

    mode: str
    done: threading.Event


@dataclass(frozen=True, slots=True)
class _WriteBack:
    """The store file deleted or replaced: the writer puts the open database back."""

    fault: Fault


@dataclass(frozen=True, slots=True)
class _Commit:
    """A group whose statements ran, waiting for its COMMIT on the committer thread."""

    loop: asyncio.AbstractEventLoop
    group: list[tuple[Job, asyncio.Future[Any], bool]]
    results: list[tuple[bool, Any]]


def _reading(connection: sqlite3.Connection) -> sqlite3.Connection:
    """A connection for reads only, knowing the lanes' hash."""
    connection.execute("PRAGMA query_only = ON")
    connection.create_function("lane_of", 2, lane_of, deterministic=True)
    return connection


def _run_group(connection: sqlite3.Connection, jobs: list[Job]) -> list[tuple[bool, Any]]:
    """Run a group's jobs in one transaction; if one fails, roll them all back and run each
    in a savepoint of its own, so that only the failing one fails."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        return [(True, job(connection)) for job in jobs]
    except Exception:  # the slow path below hands each job its own outcome
        connection.execute("ROLLBACK")
        connection.execute("BEGIN IMMEDIATE")
        return [_run_in_savepoint(connection, job) for job in jobs]


def _run_in_savepoint(connection: sqlite3.Connection, job: Job) -> tuple[bool, Any]:
    """Run one job of a group; its failure is undone alone and handed to its caller."""
    connection.execute("SAVEPOINT job")
    try:
        result = job(connection)
    except Exception as error:  # one job's failure must not fail its group
        connection.execute("ROLLBACK TO job")
        connection.execute("RELEASE job")
        return False, error
    connection.execute("RELEASE job")
    return True, result


def _commit_failure(error: BaseException) -> StoreError:
    return StoreError(f"store commit failed: {type(error).__name__}")
