"""Keeping the SQLite store's write-ahead log small, under sustained load and when idle.

Every commit appends its pages to the WAL; a checkpoint copies them back into the database
file, and SQLite starts the WAL again from its beginning only when a transaction begins
after a checkpoint that copied everything. Under sustained load a checkpoint running beside
the writer never catches up with it (each group commit lands while it copies), so the WAL
grew by every message and was never reused: 923 MB after 20,000 messages.

So a thread of its own copies the WAL back every `INTERVAL_S`, beside the writer (PASSIVE:
it waits for nobody), which does the bulk of the work without holding any message up. Once
the WAL file has passed its limit, the thread then asks the writer to checkpoint what came
meanwhile between two of its group commits; messages arriving in that pause join the next
group. Everything being copied, the next group starts the WAL again from its beginning, and
`journal_size_limit` cuts the file back to the limit. The WAL file thus stays within the
limit and what one round lets in (one group commit, and what arrives while the bulk copies).
When the engine has committed nothing for `IDLE_S`, the writer empties the file (TRUNCATE),
waiting at most `IDLE_WAIT_MS` for readers, so an idle engine keeps no WAL.

A reader holding a snapshot older than the last commit (a long console query) stops the
WAL from starting again until it ends; the next round tries again.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable

from engine.base.logs import get_logger

log = get_logger("engine.store")
INTERVAL_S = 0.5
IDLE_S = 1.0
IDLE_WAIT_MS = 100
BUSY_TIMEOUT_MS = 10_000  # the writer's usual wait for another process's write
MB = 1024 * 1024
LIMIT_MB = 64  # `[engine] wal_limit_mb`: a few seconds of a burst, a small share of a disk

Checkpoint = Callable[[str], None]
"""Run `PRAGMA wal_checkpoint(MODE)` on the writer's connection between two group commits,
returning once it ran."""


def wal_path(database: str) -> str:
    """Where SQLite keeps the WAL: beside the file a symbolic link leads to."""
    return f"{os.path.realpath(database)}-wal"


def wal_bytes(wal: str) -> int:
    """The size of a WAL file (`wal_path`; 0 when there is none)."""
    try:
        return os.stat(wal).st_size
    except FileNotFoundError:
        return 0


def prepare_writer(connection: sqlite3.Connection, limit_bytes: int) -> None:
    """The writer never checkpoints inside a commit (copying the WAL back and syncing the
    file would stall every message of the group), and cuts the WAL file back to the limit
    when the WAL starts again."""
    connection.execute("PRAGMA wal_autocheckpoint = 0")
    connection.execute(f"PRAGMA journal_size_limit = {int(limit_bytes)}")


def checkpoint_writer(connection: sqlite3.Connection, mode: str) -> None:
    """What the writer runs when asked, between two group commits."""
    if mode == "TRUNCATE":  # it waits for readers: not for long, the next idle round retries
        connection.execute(f"PRAGMA busy_timeout = {IDLE_WAIT_MS}")
    try:
        connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
    except sqlite3.Error as error:
        log.warning("store checkpoint failed", error=type(error).__name__)
    finally:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


class WalKeeper:
    """The checkpointing thread of the engine's store; `committed()` after each commit."""

    def __init__(self, database: str, limit_bytes: int, by_writer: Checkpoint) -> None:
        self._database = database
        self._wal = ""
        self._limit = limit_bytes
        self._by_writer = by_writer
        self._last_commit = time.monotonic()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="store-checkpointer", daemon=True)

    def start(self) -> None:
        """Once the store file exists; its WAL's path is resolved once, not at every
        commit (the file written back after a fault comes back at the same path)."""
        self._wal = wal_path(self._database)
        self._thread.start()

    def committed(self) -> None:
        """On the committer's thread: a commit landed; past the limit, act at once."""
        self._last_commit = time.monotonic()
        if wal_bytes(self._wal) > self._limit:
            self._wake.set()

    def stop(self) -> None:
        """Ends the thread; the writer must still serve what it asks meanwhile."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._database, isolation_level=None)
        try:
            while True:
                self._wake.wait(INTERVAL_S)
                self._wake.clear()
                if self._stopping:
                    return
                self._round(connection)
        finally:
            connection.close()

    def _round(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:  # e.g. busy: the next round tries again
            log.warning("store checkpoint failed", error=type(error).__name__)
            return
        size = wal_bytes(self._wal)
        if size > self._limit:
            self._by_writer("PASSIVE")
        elif size and time.monotonic() - self._last_commit >= IDLE_S:
            self._by_writer("TRUNCATE")
