"""One engine per SQLite store: an exclusive lock the running engine holds on the file itself.

Two engines on one SQLite file would both deliver every queue (each message twice, order
going backwards); two engines reaching it by two names (a hard link) would each keep a WAL
of their own beside their name and corrupt the file. The lock is therefore taken on the
database file, not on a name: before opening it, the engine takes an exclusive `flock` on
the file, so a symbolic link, a hard link or any other path to the same file finds it taken.
`flock` locks are kept apart from the byte-range locks SQLite takes on the same file, so the
operator commands (`queue`, `report`), which take none, work beside the running engine. The
kernel releases the lock when the engine ends, however it ends (SIGKILL included), so a
crash never leaves a stale lock.

Who holds it is read from `/proc/locks`, where the kernel lists each lock with its holder's
PID and its file's device and inode: testing the lock by taking it would mean opening and
closing the database file in a process whose SQLite connections may hold byte-range locks
on it, and closing any descriptor of a file drops those.

This is a property of single-engine stores: a store shared by several engines (PostgreSQL,
with a lease per destination queue) coordinates them its own way and does not use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreError

PROC_LOCKS = Path("/proc/locks")


class StoreInUse(StoreError):
    """Another engine holds the store: names the store and that engine's PID."""

    def __init__(self, database: str, pid: int | None) -> None:
        self.database = database
        self.pid = pid
        who = f"another engine (PID {pid})" if pid else "another engine"
        super().__init__(
            f"the store {database} is in use by {who}: one engine per store, whatever the "
            "name it is reached by; stop it, or give this configuration a store of its own "
            "([engine] store)"
        )


class EngineLock:
    """The exclusive lock of a running engine on its store; `release()` at shutdown, once
    the store's connections are closed."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    @classmethod
    def acquire(cls, database: str) -> EngineLock:
        """Take the lock on the existing database file; raises `StoreInUse`."""
        descriptor = os.open(os.path.realpath(database), os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _flock_holder(os.fstat(descriptor))
            os.close(descriptor)
            raise StoreInUse(database, pid) from None
        return cls(descriptor)

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the descriptor releases the lock
            self._descriptor = None


@dataclass(frozen=True, slots=True)
class Holder:
    """The engine running on a store; `pid` is None when the kernel does not say it."""

    pid: int | None


def holder(database: str) -> Holder | None:
    """The engine running on `database`, or None when no engine holds its lock."""
    try:
        found = os.stat(database)
    except OSError:
        return None
    pid = _flock_holder(found)
    return None if pid is None else Holder(pid or None)


def _flock_holder(file: os.stat_result) -> int | None:
    """The PID of the process holding a `flock` on `file` (0 when the kernel hides it), or
    None when there is none (or no `/proc/locks` to tell)."""
    device = f"{os.major(file.st_dev):02x}:{os.minor(file.st_dev):02x}:{file.st_ino}"
    with contextlib.suppress(OSError):
        # e.g. "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146333 0 EOF"; a waiter has "->" after "1:"
        for line in PROC_LOCKS.read_text(encoding="ascii", errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
                return int(fields[4]) if fields[4].isdigit() else 0
    return None
