"""An MLLP receiver on loopback for tests: records every message in arrival order and answers
each one as a handler function says (AA by default).

    async with Receiver() as downstream:            # port 0: downstream.port is the real one
        ...                                         # point a destination at downstream.address
        await downstream.wait_for(100)              # until 100 messages arrived (or fail)
        assert downstream.control_ids == [...]

With `ssl_context`, it serves TLS (set `verify_mode` to require a client certificate).
A handler gets the `Received` message and returns a `Reply` (an answer, optionally sent
late, or held until the test sets an event: a send in flight for as long as the test needs)
or None (no answer at all). `ack(received, "AE", error_code="207")` builds an ACK;
`Reply(b"garbage")` sends anything. Each connection is numbered, so a test can tell that a
retry came on a new connection. Bytes outside a block (a TLS handshake to a plain receiver)
make it hang up. `wait_answered(n)` waits until n answers were written (a
late answer included), so a test orders itself on what the receiver did, not on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from engine.hl7.message import Message
from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, encode_frame


@dataclass(frozen=True)
class Received:
    payload: bytes
    control_id: str  # MSH-10
    connection: int  # 1 for the first connection accepted, 2 for the next...
    index: int  # 0 for the first message received, over all connections


@dataclass(frozen=True)
class Reply:
    payload: bytes
    delay_s: float = 0.0  # answer this late (the sender may have given up and closed)
    held_until: asyncio.Event | None = None  # answer once the test sets this, and not before


Handler = Callable[[Received], Reply | None]


def ack(received: Received, code: str = "AA", error_code: str = "", text: str = "") -> Reply:
    """An ACK of `received` (MSA-2 = its MSH-10), with an ERR-3 code when given."""
    return Reply(ack_bytes(received.control_id, code, error_code, text))


def ack_bytes(control_id: str, code: str = "AA", error_code: str = "", text: str = "") -> bytes:
    segments = [
        f"MSH|^~\\&|DOWNSTREAM|TEST|INS-ENGINE|TEST|20240101000000||ACK^A01^ACK|A{control_id}|P|2.5",
        f"MSA|{code}|{control_id}|{text}",
    ]
    if error_code:
        segments.append(f"ERR|||{error_code}^Error^HL70357|E||||{text}")
    return ("\r".join(segments) + "\r").encode("latin-1")


def accept_all(received: Received) -> Reply:
    return ack(received)


class Receiver:
    """An asyncio MLLP server on loopback; use as `async with`."""

    def __init__(
        self,
        handler: Handler = accept_all,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.received: list[Received] = []
        self.connections = 0
        self.answered = 0
        """Answers written so far (late ones once written)."""
        self._port = port
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        """`127.0.0.1:port`, as a destination's `mllp` key wants it."""
        return f"127.0.0.1:{self.port}"

    @property
    def control_ids(self) -> list[str]:
        return [message.control_id for message in self.received]

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def start(self) -> Receiver:
        """Listen (what `async with` does; `close` undoes it)."""
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self._port, ssl=self._ssl
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and drop every connection (a downstream going down)."""
        if self._server is not None:
            self._server.close()
        await self.drop_connections()
        if self._server is not None:
            await self._server.wait_closed()

    async def drop_connections(self) -> None:
        """Close every open connection, as a receiver closing idle connections does."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        """Wait until `count` messages have arrived; fail after `timeout_s` (a hang guard)."""
        await self._until(lambda: len(self.received) >= count, timeout_s)

    async def wait_answered(self, count: int, timeout_s: float = 60.0) -> None:
        """Wait until `count` answers have been written; fail after `timeout_s` (a hang guard)."""
        await self._until(lambda: self.answered >= count, timeout_s)

    async def _until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        connection = self.connections
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                decoder.feed(data)
                while (event := decoder.next_event()) is not NEED_DATA:
                    if not isinstance(event, Frame):
                        return  # not MLLP (a TLS ClientHello, say): hang up
                    await self._answer(event.payload, connection, writer)
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _answer(self, payload: bytes, connection: int, writer: asyncio.StreamWriter) -> None:
        message = Message.parse(payload.decode("latin-1"))
        received = Received(payload, message.msh.field(10), connection, len(self.received))
        self.received.append(received)
        self._changed.set()
        reply = self.handler(received)
        if reply is None:
            return
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.held_until is not None:
            await reply.held_until.wait()
        writer.write(encode_frame(reply.payload))
        self.answered += 1
        self._changed.set()
        await writer.drain()
