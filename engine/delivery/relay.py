"""The channel between the engine and its delivery process, and what travels on it.

Frames both ways: a 4-byte length, then the messages sent in one turn of the loop, pickled
together (a socket pair between an engine and the process it started: nothing else can write
on it). Each message is a record named
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
from collections import deque
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


class Channel(asyncio.Protocol, Generic[Sent, Received]):
    """Frames over a stream; what is sent in one turn of the loop leaves in one frame."""

    def __init__(self, accepted: tuple[type, ...]) -> None:
        self._accepted = accepted
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[Sent] = []
        self._buffer = bytearray()
        self._received: deque[object] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._gone = False  # the other end closed
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while len(buffer) - start >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, start)
            end = start + _LENGTH.size + length
            if len(buffer) < end:
                break
            # Our own child or parent, over a private socketpair.
            self._received.extend(pickle.loads(buffer[start + _LENGTH.size : end]))  # noqa: S301
            start = end
        del buffer[:start]
        self._wake()

    def eof_received(self) -> bool:
        self._gone = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self._wake()
        self.resume_writing()

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send(self, message: Sent) -> None:
        if self._closing:
            return
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(message)

    def send_once(self, message: Sent) -> None:
        """`send`, unless an equal message already leaves in this turn's frame (for a
        message that says the same each time, as `Wake`)."""
        if message not in self._outgoing:
            self.send(message)

    @property
    def _closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def _flush(self) -> None:
        messages, self._outgoing = self._outgoing, []
        if messages and not self._closing:
            assert self._transport is not None
            body = pickle.dumps(messages, pickle.HIGHEST_PROTOCOL)
            self._transport.write(_LENGTH.pack(len(body)) + body)

    async def receive(self) -> Received | None:
        """The next message, or None once the other end has closed."""
        while not self._received:
            if self._gone:
                return None
            self._waiter = self._loop.create_future()
            await self._waiter
        message = self._received.popleft()
        if not isinstance(message, self._accepted):
            raise TypeError(f"not a message this end receives: {type(message).__name__}")
        return cast(Received, message)

    async def drain(self) -> None:
        self._flush()
        if self._writable is not None and not self._closing:
            await self._writable

    def close(self) -> None:
        self._flush()
        if self._transport is not None:
            self._transport.close()


async def _channel(sock: Any, accepted: tuple[type, ...]) -> Any:
    loop = asyncio.get_running_loop()
    _, channel = await loop.create_unix_connection(lambda: Channel[Any, Any](accepted), sock=sock)
    return channel


async def to_process(sock: Any) -> Channel[ToProcess, ToEngine]:
    """The engine's end of the channel."""
    channel: Channel[ToProcess, ToEngine] = await _channel(sock, (Ready, Attempts, Ask))
    return channel


async def to_engine(sock: Any) -> Channel[ToEngine, ToProcess]:
    """The delivery process's end of the channel."""
    channel: Channel[ToEngine, ToProcess] = await _channel(
        sock, (Configure, Reconfigure, Wake, Stop, Answer)
    )
    return channel
