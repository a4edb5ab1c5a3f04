"""The channel between the engine and its delivery process, and what travels on it.

Frames both ways: a 4-byte length, then one pickled message (a socket pair between an engine
and the process it started: nothing else can write on it). Each message is a record named
for what it says, and each end receives only its own kinds: the engine sends `Configure`
first (so the process delivers exactly what the engine routes, whatever the file says by
then), `Reconfigure` with the routes of a configuration it reloaded, `Wake` when entries
were routed or requeued, `Stop`, and the `Answer` to each
store write asked; the process sends `Ready` once its lanes run, `Attempts` for the
engine's metrics, and `Ask` with a write (`engine.delivery.writes`): with SQLite the
engine's connection is the store's only writer, so the process's delivered marks join the
engine's group commits instead of waiting for the file's lock.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from engine.delivery.writes import Write

if TYPE_CHECKING:  # the lane workers, which import this module, need no configuration
    from engine.config.settings import Config

_LENGTH = struct.Struct("!I")

# route, destination, seconds, delivered, parked, mismatched
Attempt = tuple[str, str, float, bool, bool, bool]


@dataclass(frozen=True, slots=True)
class Configure:
    """The engine's configuration and identity, first of all."""

    config: Config
    engine_id: str


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """The engine reloaded its configuration: deliver these routes' destinations now."""

    config: Config


@dataclass(frozen=True, slots=True)
class Wake:
    """Entries were routed or requeued: look at once."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop after the messages being sent."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of the write asked as `number`: its result, or the error it raised."""

    number: int
    ok: bool
    value: object


@dataclass(frozen=True, slots=True)
class Ready:
    """The process's lanes run."""


@dataclass(frozen=True, slots=True)
class Attempts:
    """Delivery attempts made since the last batch, for the engine's metrics."""

    attempts: list[Attempt]


@dataclass(frozen=True, slots=True)
class Ask:
    """A store write for the engine to make, answered under `number`."""

    number: int
    write: Write[Any]


ToProcess = Configure | Reconfigure | Wake | Stop | Answer
ToEngine = Ready | Attempts | Ask
Sent = TypeVar("Sent")
Received = TypeVar("Received")


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


class Channel(Generic[Sent, Received]):
    """Frames over a stream; what is sent in one turn of the loop leaves in one write."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        accepted: tuple[type, ...],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._accepted = accepted
        self._outgoing: list[bytes] = []

    def send(self, message: Sent) -> None:
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

    async def receive(self) -> Received | None:
        """The next message, or None once the other end has closed."""
        try:
            (length,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
            body = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        message = pickle.loads(body)  # noqa: S301 - our own child or parent, a private socketpair
        if not isinstance(message, self._accepted):
            raise TypeError(f"not a message this end receives: {type(message).__name__}")
        return cast(Received, message)

    async def drain(self) -> None:
        self._flush()
        if not self._writer.is_closing():
            await self._writer.drain()

    def close(self) -> None:
        self._flush()
        self._writer.close()


async def to_process(sock: Any) -> Channel[ToProcess, ToEngine]:
    """The engine's end of the channel."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    return Channel(reader, writer, (Ready, Attempts, Ask))


async def to_engine(sock: Any) -> Channel[ToEngine, ToProcess]:
    """The delivery process's end of the channel."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    return Channel(reader, writer, (Configure, Reconfigure, Wake, Stop, Answer))
