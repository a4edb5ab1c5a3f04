"""One engine per SQLite store: an exclusive lock the running engine holds on its store.

Two engines on one SQLite file would both deliver every queue (each message twice, order
going backwards). A SQLite store therefore belongs to one engine: before serving anything
the engine takes an exclusive `flock` on `<store>.lock`, beside the database file, and
writes its PID there. The kernel releases the lock when the process ends, however it ends
(SIGKILL included), so a crash never leaves a stale lock. Operator commands (`queue`,
`report`) do not take it: they work beside the running engine.

This is a property of single-engine stores: a store shared by several engines (PostgreSQL,
with a lease per destination queue) coordinates them its own way and does not use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreError

LOCK_SUFFIX = ".lock"
# `holder()` takes the lock for an instant to test it: an engine starting at that instant
# tries again rather than report a running engine that is not there.
ATTEMPTS = 5
RETRY_S = 0.05


class StoreInUse(StoreError):
    """Another engine holds the store: names the store and that engine's PID."""

    def __init__(self, database: str, pid: int | None) -> None:
        self.database = database
        self.pid = pid
        who = f"another engine (PID {pid})" if pid else "another engine"
        super().__init__(
            f"the store {database} is in use by {who}: one engine per store; stop it, or "
            "give this configuration a store of its own ([engine] store)"
        )


def lock_path(database: str) -> Path:
    return Path(f"{database}{LOCK_SUFFIX}")


class EngineLock:
    """The exclusive lock of a running engine on its store; `release()` at shutdown."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    @classmethod
    def acquire(cls, database: str) -> EngineLock:
        """Take the lock (the store's folder must exist); raises `StoreInUse`."""
        descriptor = os.open(lock_path(database), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            for attempt in range(ATTEMPTS):
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == ATTEMPTS - 1:
                        raise StoreInUse(database, _read_pid(descriptor)) from None
                    time.sleep(RETRY_S)
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(descriptor)
            raise
        return cls(descriptor)

    def release(self) -> None:
        if self._descriptor is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._descriptor, 0)
        os.close(self._descriptor)  # closing the descriptor releases the lock
        self._descriptor = None


@dataclass(frozen=True, slots=True)
class Holder:
    """The engine running on a store; `pid` is None in the instant before it writes it."""

    pid: int | None


def holder(database: str) -> Holder | None:
    """The engine running on `database`, or None when no engine holds its lock."""
    try:
        descriptor = os.open(lock_path(database), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Holder(_read_pid(descriptor))
        return None
    finally:
        os.close(descriptor)  # releases the shared lock if it was taken


def _read_pid(descriptor: int) -> int | None:
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
