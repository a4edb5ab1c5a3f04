"""The channel between the engine and its delivery process, and what travels on it.

Frames both ways: a 4-byte length, then a pickled tuple (a socket pair between an engine and
the process it started: nothing else can write on it). The engine sends the configuration
first (so the process delivers exactly what the engine routes, whatever the file says by
then), then `("wake",)` when entries were routed or requeued, `("stop",)`, and the results of
the store writes the process asked for. The process sends `("ready",)` once its lanes run,
`("attempts", [...])` for the engine's metrics, and `("write", id, method, args, kwargs)`:
with SQLite the engine's connection is the store's only writer, so the process's delivered
marks join the engine's group commits instead of waiting for the file's lock.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any, Protocol

_LENGTH = struct.Struct("!I")

# route, destination, seconds, delivered, parked, mismatched
Attempt = tuple[str, str, float, bool, bool, bool]
# What the process asks the engine to write: its marks and failures, retention, its leases.
WRITES = frozenset(
    {
        "mark_delivered",
        "record_failure",
        "prune",
        "claim_lease",
        "release_lease",
        "engine_seen",
        "engine_stopped",
    }
)


class DeliveryMetrics(Protocol):
    """Where a lane worker reports each delivery attempt."""

    def delivery_attempted(
        self,
        route: str,
        destination: str,
        seconds: float,
        delivered: bool,
        parked: bool = False,
        mismatched: bool = False,
    ) -> None: ...


class RelayedMetrics:
    """The delivery process's metrics: attempts kept until sent to the engine in a batch."""

    def __init__(self) -> None:
        self._attempts: list[Attempt] = []

    def delivery_attempted(
        self,
        route: str,
        destination: str,
        seconds: float,
        delivered: bool,
        parked: bool = False,
        mismatched: bool = False,
    ) -> None:
        self._attempts.append((route, destination, seconds, delivered, parked, mismatched))

    def take(self) -> list[Attempt]:
        attempts, self._attempts = self._attempts, []
        return attempts


class Channel:
    """Frames over a stream; what is sent in one turn of the loop leaves in one write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._outgoing: list[bytes] = []

    @classmethod
    async def over(cls, sock: Any) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, *message: Any) -> None:
        if self._writer.is_closing():
            return
        body = pickle.dumps(message)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(_LENGTH.pack(len(body)) + body)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if not self._writer.is_closing():
            self._writer.write(b"".join(frames))

    async def receive(self) -> tuple[Any, ...] | None:
        """The next message, or None once the other end has closed."""
        try:
            (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
            body = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        message = pickle.loads(body)  # noqa: S301 - our own child or parent, a private socketpair
        if not isinstance(message, tuple):
            raise TypeError("a tuple per frame")
        return message

    async def drain(self) -> None:
        self._flush()
        if not self._writer.is_closing():
            await self._writer.drain()

    def close(self) -> None:
        self._flush()
        self._writer.close()
