"""Delivering to a folder: one file per message, written atomically.

The file is written under a hidden temporary name, flushed to disk, then renamed into
place, so a reader of the folder never sees a partial message. Names start with the
zero-padded outbox entry id: sorting the folder by name gives the delivery order (a resent
entry gets a new, larger id, so it sorts after what was queued before it). Writing an
entry again after a crash replaces its file with identical bytes, so for a folder
at-least-once delivery never leaves a duplicate file. Files are created 0640 and the
folders the sender creates 0750 (`engine.base.folders`).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from engine.base.folders import make_folders
from engine.delivery.destination import Outcome, Result
from engine.store.base import OutboxEntry

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Messages hold patient data: readable by the owner and the group of the system that
# collects them, never by everyone (whatever the process umask allows).
FILE_MODE = 0o640


def file_name(entry: OutboxEntry) -> str:
    """`000000000042-CTRL123.hl7`: entry id first, then the MSH-10 made filename-safe."""
    control_id = _UNSAFE.sub("_", entry.control_id)[:40].lstrip(".") or "message"
    return f"{entry.entry_id:012d}-{control_id}.hl7"


class FileSender:
    """`Sender` for a `file = "dir"` destination."""

    def __init__(self, folder: str) -> None:
        self._folder = Path(folder)

    async def send(self, entry: OutboxEntry) -> Result:
        try:
            await asyncio.to_thread(self._write, file_name(entry), entry.payload)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            return Result(Outcome.RETRY, error=f"cannot write the message file: {reason}")
        return Result(Outcome.DELIVERED)

    def _write(self, name: str, payload: bytes) -> None:
        make_folders(self._folder)
        temporary = self._folder / f".{name}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with open(descriptor, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._folder / name)
        folder = os.open(self._folder, os.O_RDONLY)
        try:
            os.fsync(folder)  # make the rename itself durable
        finally:
            os.close(folder)

    async def close(self) -> None:
        """Nothing is held open between messages."""
