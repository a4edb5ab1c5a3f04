"""The store file under the engine's feet: deleted, replaced or made read-only while it runs.

SQLite goes on writing into the file it opened, whatever becomes of its name. Deleted (a
clean-up script, a wrong `rm`), the engine would acknowledge messages into a file that
disappears with its process; replaced, the restart would open the other file. So the
engine's store compares, before each group commit and every `WATCH_S` when idle, the file
it has open (device and inode) with the one its path names, and whether that file may
still be written; the check is a `stat`, a few microseconds.

Policy. From the moment a fault is seen no write commits, so no message gets AA. A file
deleted or replaced is written back: the still-open database is copied with SQLite's
backup API into a new file beside it (0600, synced), a replacement is moved aside to
`<path>.replaced-<UTC time>`, the old `-wal` and `-shm` names are removed (their content is
in the copy; left there, SQLite would apply them to it), and the copy is renamed into
place. Every message acknowledged before is then in the file at the path, even if the
engine is killed the next instant; the engine refuses every write until it is restarted
on it. A file made read-only keeps its place and its data: writes are refused while it
stays so and resume once it is writable again.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from dataclasses import dataclass

from engine.errors import StoreFileFault
from engine.store.lock import EngineLock

WATCH_S = 0.5


@dataclass(frozen=True, slots=True)
class Fault:
    """What happened to the store file; `lasting` when only a write back and a restart
    end it."""

    what: str  # deleted, replaced, read-only
    lasting: bool


DELETED = Fault("deleted", lasting=True)
REPLACED = Fault("replaced", lasting=True)
READ_ONLY = Fault("read-only", lasting=False)


class StoreFile:
    """The engine's open store file, compared with what its path names."""

    def __init__(self, path: str) -> None:
        self.path = os.path.realpath(path)
        opened = os.stat(self.path)
        self._identity = (opened.st_dev, opened.st_ino)

    def fault(self) -> Fault | None:
        """What is wrong with the file at the path, or None."""
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return DELETED
        if (found.st_dev, found.st_ino) != self._identity:
            return REPLACED
        # The owner's write bit, not only access(): root may write anything, yet an
        # operator who took the bit away wants the file left alone.
        if not found.st_mode & stat.S_IWUSR or not os.access(self.path, os.W_OK):
            return READ_ONLY
        return None

    def write_back(self, connection: sqlite3.Connection, fault: Fault) -> EngineLock:
        """Put the still-open database back at the path (see the module's policy), on the
        writer's connection between two group commits; returns the engine's lock on the
        new file, so that no other engine starts on it while this one runs."""
        copy = f"{self.path}.restoring"
        _remove(copy)  # a copy an earlier attempt left half written
        os.close(os.open(copy, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        target = sqlite3.connect(copy)
        try:
            connection.backup(target)
        finally:
            target.close()
        _sync(copy)
        if fault is REPLACED:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            os.rename(self.path, f"{self.path}.replaced-{stamp}")
        for suffix in ("-wal", "-shm"):
            _remove(self.path + suffix)
        lock = EngineLock.acquire(copy)  # the lock follows the file through the rename
        os.rename(copy, self.path)
        _sync(os.path.dirname(self.path))
        return lock

    def refusal(self, fault: Fault, written_back: bool) -> StoreFileFault:
        """The error every write gets while `fault` lasts."""
        if fault.lasting and written_back:
            return StoreFileFault(
                f"store file {fault.what} under the engine: written back to its path, "
                "restart the engine"
            )
        if fault.lasting:
            return StoreFileFault(
                f"store file {fault.what} under the engine: not written back yet, keep the "
                "engine running (the only copy is open in it)"
            )
        return StoreFileFault(f"store file {fault.what}: writes refused until it is writable")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _sync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
