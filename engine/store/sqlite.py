"""The embedded store: one SQLite file in WAL mode, written with group commits.

A write is a job (a function of the connection) with a future. Jobs submitted while a
commit is in flight wait together; when it ends, all of them run in one transaction and one
COMMIT — one fsync — makes them durable; only then are their futures resolved. A burst of
messages therefore pays one fsync per group, and no message is acknowledged before the
transaction holding it has committed. Should a job fail, the group is rolled back and run
again with each job in a savepoint of its own, so that the failing job fails alone; the
common case pays for no savepoint.

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
import dataclasses
import functools
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.base.folders import make_folders
from engine.base.logs import get_logger
from engine.errors import LeaseLost, StoreError, StoreFileFault
from engine.store import sqlite_console
from engine.store.actions import (
    OPEN,
    becomes_resent,
    delivered_after_skip,
    resend_refusal,
    resent,
    skip_refusal,
    skipped,
)
from engine.store.base import (
    FINISHED,
    Accepted,
    ActionResult,
    AuditEntry,
    ComponentState,
    DroppedMessage,
    EngineState,
    EntryStatus,
    EntrySummary,
    EntryTrace,
    Incoming,
    Lease,
    LeaseClaim,
    LeaseState,
    MessageDetail,
    MessageQuery,
    MessageStatus,
    MessageSummary,
    MessageTrace,
    OutboxEntry,
    Parameters,
    Pruned,
    QueueStatus,
    RoutingResult,
    StoredMessage,
    TraceEvent,
    routed_status,
)
from engine.store.decision import Decision
from engine.store.extension import ExtensionSql, StoreExtension, dialect_sql
from engine.store.lanes import lane_of
from engine.store.lock import EngineLock
from engine.store.migrations import sqlite as migrations
from engine.store.rows import (
    OUTBOX_COLUMNS,
    SUMMARY_COLUMNS,
    TRACE_COLUMNS,
    entry_summary,
    message_trace,
    outbox_entry,
)
from engine.store.sqlite_file import WATCH_S, Fault, StoreFile
from engine.store.sqlite_wal import (
    BUSY_TIMEOUT_MS,
    LIMIT_MB,
    MB,
    WalKeeper,
    checkpoint_writer,
    prepare_writer,
    wal_bytes,
)

log = get_logger("engine.store")
T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
MAX_GROUP = 512
STORE_MODE = 0o600

_FINISHED_SQL = ", ".join(f"'{status.value}'" for status in FINISHED)


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


class SqliteStore:
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
        self.path = path
        self.name = path
        self._extensions = [_sqlite_statements(extension) for extension in extensions]
        self._recorders = {
            extension.kind: (extension, sql.record)
            for extension, sql in self._extensions
            if sql.record is not None
        }
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
        migrations.prepare(connection, self.path, [sql for _, sql in self._extensions])
        prepare_writer(connection, self._wal_limit)
        self._write_connection = connection
        self._read_connection = _reading(_connect(self.path))
        self._loop_read_connection = _reading(_connect(self.path))

    # -- checkpoints the writer runs (engine.store.sqlite_wal) ----------------------------

    def wal_bytes(self) -> int:
        """The size of the WAL file, for `/metrics`."""
        return wal_bytes(self.path)

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

    async def _write(self, job: Callable[[sqlite3.Connection], T], durable: bool = True) -> T:
        """Run `job` in the next group commit. `durable=False` is for state the engine can
        rebuild after a power loss (routing, delivery marks, caches): a group of only such
        jobs commits without an fsync; the next durable commit, or a checkpoint, syncs it.
        The WAL is written in order, so a power loss can only lose the latest of them."""
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((job, future, durable))
        self._schedule_flush(loop)
        return await future

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

    # -- what store extensions run (engine.store.extension) -----------------------------

    async def fetch(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        return await self._read(lambda connection: connection.execute(sql, parameters).fetchall())

    async def execute(self, sql: str, parameters: Parameters = (), durable: bool = True) -> int:
        return await self._write(
            lambda connection: connection.execute(sql, parameters).rowcount, durable=durable
        )

    def _record_decisions(
        self,
        connection: sqlite3.Connection,
        decisions: Iterable[tuple[int, Decision]],
        now: float,
    ) -> None:
        """The generic decision rows, and each extension's rows, in the caller's transaction."""
        decided = list(decisions)
        if not decided:
            return
        connection.executemany(
            """INSERT INTO step_decisions (message_id, recorded_at, destination, step, kind,
                   outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [
                (message_id, now, d.destination, d.step, d.kind, d.outcome, d.detail)
                for message_id, d in decided
            ],
        )
        rows: dict[str, list[Sequence[Any]]] = {}
        for message_id, decision in decided:
            recorder = self._recorders.get(decision.kind)
            if recorder is not None:
                row = recorder[0].row(message_id, now, decision)
                if row is not None:
                    rows.setdefault(recorder[1], []).append(row)
        for statement, parameters in rows.items():
            connection.executemany(statement, parameters)

    # -- inbox ------------------------------------------------------------------------

    async def accept(self, incoming: Incoming) -> Accepted:
        def job(connection: sqlite3.Connection) -> Accepted:
            row = connection.execute(
                """INSERT INTO messages (received_at, route, peer, sending_application,
                       sending_facility, control_id, message_type, content_hash, size, raw,
                       ack, status)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT DO NOTHING RETURNING id""",
                (
                    incoming.received_at,
                    incoming.route,
                    incoming.peer,
                    incoming.sending_application,
                    incoming.sending_facility,
                    incoming.control_id,
                    incoming.message_type,
                    incoming.content_hash,
                    len(incoming.raw),
                    incoming.raw,
                    incoming.ack,
                    (MessageStatus.DROPPED if incoming.dropped else MessageStatus.RECEIVED).value,
                ),
            ).fetchone()
            if row is not None:
                decided = ((row[0], decision) for decision in incoming.decisions)
                self._record_decisions(connection, decided, time.time())
                return Accepted(row[0], duplicate=False, same_content=True, ack=incoming.ack)
            message_id, content_hash, ack = connection.execute(
                """SELECT id, content_hash, ack FROM messages WHERE route = ?
                   AND sending_application = ? AND sending_facility = ? AND control_id = ?""",
                (
                    incoming.route,
                    incoming.sending_application,
                    incoming.sending_facility,
                    incoming.control_id,
                ),
            ).fetchone()
            return Accepted(message_id, True, content_hash == incoming.content_hash, ack)

        return await self._write(job)

    async def received(self, after_id: int, limit: int) -> list[StoredMessage]:
        def job(connection: sqlite3.Connection) -> list[StoredMessage]:
            rows = connection.execute(
                """SELECT id, route, received_at, control_id, message_type, raw FROM messages
                   WHERE status = 'received' AND id > ? ORDER BY id LIMIT ?""",
                (after_id, limit),
            ).fetchall()
            return [StoredMessage(*row) for row in rows]

        return self._read_now(job)

    async def route_messages(self, routed: list[RoutingResult]) -> None:
        now = time.time()

        def job(connection: sqlite3.Connection) -> None:
            # Only from 'received': a message routed already fails the whole batch rather
            # than be routed twice (the PostgreSQL store's guard between routers; here the
            # same contract).
            marked = connection.executemany(
                "UPDATE messages SET status = ? WHERE id = ? AND status = 'received'",
                [(routed_status(result).value, result.message_id) for result in routed],
            ).rowcount
            if marked != len(routed):
                raise StoreError("messages already routed")
            connection.executemany(
                """INSERT INTO outbox (message_id, route, destination, payload, patient_key,
                       status, attempts, next_attempt_at, updated_at)
                   SELECT id, route, ?, ?, ?, 'pending', 0, 0, ? FROM messages WHERE id = ?""",
                [
                    (entry.destination, entry.payload, entry.patient_key, now, result.message_id)
                    for result in routed
                    for entry in result.entries
                ],
            )
            self._record_decisions(
                connection,
                ((result.message_id, d) for result in routed for d in result.decisions),
                now,
            )

        # Not durable: after a power loss the messages are still 'received' and are routed
        # again. One job, so the batch is routed all or none.
        await self._write(job, durable=False)

    async def decisions(self, message_id: int) -> list[Decision]:
        return await self._read(lambda connection: _decisions(connection, message_id))

    async def dropped_messages(self, route: str | None, limit: int) -> list[DroppedMessage]:
        def job(connection: sqlite3.Connection) -> list[DroppedMessage]:
            rows = connection.execute(
                """SELECT m.id, m.route, m.control_id, m.message_type, m.received_at,
                       coalesce(d.step, ''), coalesce(d.outcome, ''), coalesce(d.detail, '')
                   FROM messages m LEFT JOIN step_decisions d ON d.id = (
                       SELECT max(id) FROM step_decisions WHERE message_id = m.id)
                   WHERE m.status = 'dropped' AND (:route IS NULL OR m.route = :route)
                   ORDER BY m.id DESC LIMIT :limit""",
                {"route": route, "limit": limit},
            ).fetchall()
            return [DroppedMessage(*row) for row in rows]

        return await self._read(job)

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
        lane_filter = "AND lane_of(o.patient_key, ?) = ?" if lanes > 1 else ""
        lane_values = (lanes, lane) if lanes > 1 else ()

        def job(connection: sqlite3.Connection) -> list[OutboxEntry]:
            rows = connection.execute(
                f"""SELECT {OUTBOX_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
                    WHERE o.route = ? AND o.destination = ? AND o.status = 'pending'
                      AND o.id > ? {lane_filter} ORDER BY o.id LIMIT ?""",  # noqa: S608 - constant SQL
                (route, destination, after_entry_id, *lane_values, limit),
            ).fetchall()
            return [outbox_entry(row) for row in rows]

        return self._read_now(job)

    async def mark_delivered(
        self, entry_id: int, ack_code: str, fence: Lease | None = None
    ) -> bool:
        now = time.time()

        def job(connection: sqlite3.Connection) -> bool:
            _check_fence(connection, fence)
            marked = connection.execute(
                """UPDATE outbox SET status = 'delivered', delivered_at = ?, updated_at = ?,
                   attempts = attempts + 1, last_ack_code = ?
                   WHERE id = ? AND status = 'pending'""",
                (now, now, ack_code or None, entry_id),
            ).rowcount
            if marked:
                return True
            # An operator skipped it while the send was in flight: the skip stands (nothing
            # more is sent), and the audit says the receiver got it anyway.
            if _status_of(connection, entry_id) is EntryStatus.SKIPPED:
                _record_action(connection, now, entry_id, *delivered_after_skip(ack_code))
            return False

        # Not durable: lost in a power cut, the message is sent again (at-least-once).
        return await self._write(job, durable=False)

    async def record_failure(
        self,
        entry_id: int,
        error: str,
        next_attempt_at: float,
        park: bool,
        fence: Lease | None = None,
    ) -> None:
        now = time.time()
        status = EntryStatus.PARKED if park else EntryStatus.PENDING

        def job(connection: sqlite3.Connection) -> None:
            _check_fence(connection, fence)
            connection.execute(
                """UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,
                   next_attempt_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'""",
                (status.value, error[:500], next_attempt_at, now, entry_id),
            )
            connection.execute(
                """INSERT INTO delivery_failures (entry_id, at, error, parked)
                   VALUES (?, ?, ?, ?)""",
                (entry_id, now, error[:500], park),
            )

        await self._write(job, durable=False)

    async def entry_status(self, entry_id: int) -> EntryStatus | None:
        return self._read_now(lambda connection: _status_of(connection, entry_id))

    # -- queue operations ---------------------------------------------------------------

    async def queue_status(self) -> list[QueueStatus]:
        def job(connection: sqlite3.Connection) -> list[QueueStatus]:
            groups = connection.execute(
                """SELECT route, destination, sum(status = 'pending'), sum(status = 'parked'),
                       min(CASE WHEN status = 'pending' THEN id END),
                       coalesce(max(CASE WHEN status = 'pending' THEN attempts END), 0)
                   FROM outbox WHERE status IN ('pending', 'parked')
                   GROUP BY route, destination ORDER BY route, destination"""
            ).fetchall()
            found = []
            for route, destination, pending, parked, head, head_attempts in groups:
                oldest = connection.execute(
                    """SELECT m.received_at FROM outbox o JOIN messages m ON m.id = o.message_id
                       WHERE o.id = ?""",
                    (head,),
                ).fetchone()
                error = connection.execute(
                    """SELECT last_error FROM outbox WHERE route = ? AND destination = ?
                         AND status IN ('pending', 'parked') AND last_error IS NOT NULL
                       ORDER BY updated_at DESC LIMIT 1""",
                    (route, destination),
                ).fetchone()
                found.append(
                    QueueStatus(
                        route,
                        destination,
                        pending,
                        parked,
                        oldest[0] if oldest else None,
                        head_attempts,
                        error[0] if error else None,
                    )
                )
            return found

        return await self._read(job)

    async def list_entries(
        self, status: EntryStatus, route: str | None, destination: str | None, limit: int
    ) -> list[EntrySummary]:
        order = "ASC" if status in OPEN else "DESC"

        def job(connection: sqlite3.Connection) -> list[EntrySummary]:
            rows = connection.execute(
                f"""SELECT {SUMMARY_COLUMNS} FROM outbox o JOIN messages m ON m.id = o.message_id
                    WHERE o.status = :status AND (:route IS NULL OR o.route = :route)
                      AND (:destination IS NULL OR o.destination = :destination)
                    ORDER BY o.id {order} LIMIT :limit""",  # noqa: S608 - constant SQL
                {
                    "status": status.value,
                    "route": route,
                    "destination": destination,
                    "limit": limit,
                },
            ).fetchall()
            return [entry_summary(row) for row in rows]

        return await self._read(job)

    async def entry_ids(self, status: EntryStatus, route: str, destination: str) -> list[int]:
        def job(connection: sqlite3.Connection) -> list[int]:
            rows = connection.execute(
                """SELECT id FROM outbox WHERE route = ? AND destination = ? AND status = ?
                   ORDER BY id""",
                (route, destination, status.value),
            ).fetchall()
            return [row[0] for row in rows]

        return await self._read(job)

    async def trace(self, control_id: str, route: str | None) -> list[MessageTrace]:
        def job(connection: sqlite3.Connection) -> list[MessageTrace]:
            messages = connection.execute(
                f"""SELECT {TRACE_COLUMNS} FROM messages
                   WHERE control_id = ? AND (? IS NULL OR route = ?) ORDER BY id""",  # noqa: S608 - constant SQL
                (control_id, route, route),
            ).fetchall()
            return [
                message_trace(
                    row, _decisions(connection, row[0]), _entry_traces(connection, row[0])
                )
                for row in messages
            ]

        return await self._read(job)

    async def resend(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        now = time.time()

        def job(connection: sqlite3.Connection) -> list[ActionResult]:
            results = []
            for entry_id in entry_ids:
                status = _status_of(connection, entry_id)
                copy = None
                if status is EntryStatus.RESENT:
                    (copy,) = connection.execute(
                        "SELECT max(id) FROM outbox WHERE resend_of = ?", (entry_id,)
                    ).fetchone()
                refusal = resend_refusal(entry_id, status, copy)
                if refusal is not None:
                    results.append(refusal)
                    continue
                assert status is not None  # a missing entry is refused above
                (new_id,) = connection.execute(
                    """INSERT INTO outbox (message_id, route, destination, payload,
                           patient_key, status, attempts, next_attempt_at, updated_at,
                           resend_of)
                       SELECT message_id, route, destination, payload, patient_key,
                           'pending', 0, 0, ?, id FROM outbox WHERE id = ? RETURNING id""",
                    (now, entry_id),
                ).fetchone()
                if becomes_resent(status):
                    _set_status(connection, entry_id, EntryStatus.RESENT, now)
                _record_action(connection, now, entry_id, f"resend as {new_id}", reason)
                results.append(resent(entry_id, new_id))
            return results

        return await self._write(job)

    async def skip(self, entry_ids: list[int], reason: str) -> list[ActionResult]:
        now = time.time()

        def job(connection: sqlite3.Connection) -> list[ActionResult]:
            results = []
            for entry_id in entry_ids:
                refusal = skip_refusal(entry_id, _status_of(connection, entry_id))
                if refusal is not None:
                    results.append(refusal)
                    continue
                _set_status(connection, entry_id, EntryStatus.SKIPPED, now)
                _record_action(connection, now, entry_id, "skip", reason)
                results.append(skipped(entry_id))
            return results

        return await self._write(job)

    # -- state for other processes --------------------------------------------------------

    async def unrouted(self) -> dict[str, int]:
        def job(connection: sqlite3.Connection) -> dict[str, int]:
            rows = connection.execute(
                "SELECT route, count(*) FROM messages WHERE status = 'received' GROUP BY route"
            ).fetchall()
            return dict(rows)

        return await self._read(job)

    async def put_state(self, name: str, payload: str) -> None:
        now = time.time()
        await self._write(
            lambda connection: connection.execute(
                """INSERT INTO engine_state (name, updated_at, payload) VALUES (?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at,
                       payload = excluded.payload""",
                (name, now, payload),
            ),
            durable=False,  # the engine publishes it again as it changes
        )

    async def states(self) -> list[ComponentState]:
        def job(connection: sqlite3.Connection) -> list[ComponentState]:
            rows = connection.execute(
                "SELECT name, updated_at, payload FROM engine_state ORDER BY name"
            ).fetchall()
            return [ComponentState(*row) for row in rows]

        return await self._read(job)

    # -- what the console reads and keeps (statements in `sqlite_console`) ---------------

    async def find_messages(self, query: MessageQuery) -> list[MessageSummary]:
        return await self._read(functools.partial(sqlite_console.find_messages, query))

    async def message_detail(self, message_id: int) -> MessageDetail | None:
        def job(connection: sqlite3.Connection) -> MessageDetail | None:
            detail = sqlite_console.message_detail(message_id, connection)
            if detail is None:
                return None
            return dataclasses.replace(detail, traces=tuple(_entry_traces(connection, message_id)))

        return await self._read(job)

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._write(functools.partial(sqlite_console.record_audit, entry))

    async def audit_entries(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        return await self._read(functools.partial(sqlite_console.audit_entries, limit, before_id))

    async def save_counters(self, values: list[tuple[str, str, float]]) -> None:
        # Not durable: a power loss costs the counts since the previous save.
        await self._write(functools.partial(sqlite_console.save_counters, values), durable=False)

    async def load_counters(self) -> list[tuple[str, str, float]]:
        return await self._read(sqlite_console.load_counters)

    async def check_writable(self) -> None:
        # Not durable: a readiness probe every few seconds must not cost an fsync each;
        # a full disk or a read-only file still fails the write itself.
        await self._write(
            lambda connection: connection.execute(
                "INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, ?)", (time.time(),)
            ),
            durable=False,
        )

    # -- retention ----------------------------------------------------------------------

    async def prune(self, before: float, limit: int) -> Pruned:
        # The newest row of each table is never deleted: SQLite gives a new row the
        # largest id plus one, so deleting it could hand out an id at or below the
        # router's or a delivery worker's cursor, and that row would never be read.
        def job(connection: sqlite3.Connection) -> Pruned:
            entries = connection.execute(
                f"""DELETE FROM outbox WHERE id IN (
                      SELECT id FROM outbox WHERE status IN ({_FINISHED_SQL})
                        AND updated_at < ? AND id < (SELECT max(id) FROM outbox) LIMIT ?)""",  # noqa: S608
                (before, limit),
            ).rowcount
            messages = connection.execute(
                """DELETE FROM messages WHERE id IN (
                      SELECT id FROM messages m WHERE status IN ('routed', 'dropped')
                        AND received_at < ?
                        AND id < (SELECT max(id) FROM messages)
                        AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.id)
                      LIMIT ?)""",
                (before, limit),
            ).rowcount
            now = time.time()
            expired = sum(
                connection.execute(sql.prune, (now, limit)).rowcount
                for _, sql in self._extensions
                if sql.prune is not None
            )
            return Pruned(entries, messages, expired)

        return await self._write(job, durable=False)

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

    async def leases(self) -> list[LeaseState]:
        rows = await self._read(
            lambda connection: connection.execute(
                """SELECT name, holder, since, renewed_at, expires_at FROM leases
                   ORDER BY name"""
            ).fetchall()
        )
        return [LeaseState(*row) for row in rows]

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

    async def engines(self) -> list[EngineState]:
        rows = await self._read(
            lambda connection: connection.execute(
                "SELECT id, host, pid, started_at, seen_at FROM engines ORDER BY started_at, id"
            ).fetchall()
        )
        return [EngineState(*row) for row in rows]

    async def watch(self, on_change: Callable[[str], None]) -> None:
        """Nothing to watch: one engine uses the file, and wakes its own tasks."""


def _check_fence(connection: sqlite3.Connection, fence: Lease | None) -> None:
    """Refuse a write fenced by a lease that has changed holder since."""
    if fence is None:
        return
    row = connection.execute("SELECT token FROM leases WHERE name = ?", (fence.name,)).fetchone()
    if row is None or row[0] != fence.token:
        raise LeaseLost(f"lease {fence.name} is no longer held by this engine")


def _sqlite_statements(extension: StoreExtension) -> tuple[StoreExtension, ExtensionSql]:
    return extension, dialect_sql(extension, SqliteStore.dialect)


def _decisions(connection: sqlite3.Connection, message_id: int) -> list[Decision]:
    rows = connection.execute(
        """SELECT step, kind, outcome, detail, destination FROM step_decisions
           WHERE message_id = ? ORDER BY id""",
        (message_id,),
    ).fetchall()
    return [Decision(*row) for row in rows]


def _entry_traces(connection: sqlite3.Connection, message_id: int) -> list[EntryTrace]:
    traces = []
    for (
        entry_id,
        destination,
        status,
        attempts,
        resend_of,
        delivered_at,
        ack_code,
    ) in connection.execute(
        """SELECT id, destination, status, attempts, resend_of, delivered_at,
                   last_ack_code FROM outbox WHERE message_id = ? ORDER BY id""",
        (message_id,),
    ).fetchall():
        events = [
            TraceEvent(at, "parked" if parked else "failed", error)
            for at, error, parked in connection.execute(
                "SELECT at, error, parked FROM delivery_failures WHERE entry_id = ? ORDER BY id",
                (entry_id,),
            )
        ]
        events += [
            TraceEvent(at, action, reason)
            for at, action, reason in connection.execute(
                "SELECT at, action, reason FROM operator_actions WHERE entry_id = ? ORDER BY id",
                (entry_id,),
            )
        ]
        if delivered_at is not None:
            events.append(TraceEvent(delivered_at, "delivered", ack_code or ""))
        events.sort(key=lambda event: event.at)
        traces.append(
            EntryTrace(entry_id, destination, EntryStatus(status), attempts, resend_of, events)
        )
    return traces


def _status_of(connection: sqlite3.Connection, entry_id: int) -> EntryStatus | None:
    row = connection.execute("SELECT status FROM outbox WHERE id = ?", (entry_id,)).fetchone()
    return None if row is None else EntryStatus(row[0])


def _set_status(
    connection: sqlite3.Connection, entry_id: int, status: EntryStatus, now: float
) -> None:
    connection.execute(
        "UPDATE outbox SET status = ?, updated_at = ? WHERE id = ?", (status.value, now, entry_id)
    )


def _record_action(
    connection: sqlite3.Connection, now: float, entry_id: int, action: str, reason: str
) -> None:
    connection.execute(
        "INSERT INTO operator_actions (at, entry_id, action, reason) VALUES (?, ?, ?, ?)",
        (now, entry_id, action, reason),
    )


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
