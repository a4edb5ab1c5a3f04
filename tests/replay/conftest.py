"""A small MLLP receiver on loopback for the replay tests, built on the engine's own codec
and ACK builder: it records what each connection got and answers as the test decides."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.hl7.ack import AckBuilder, AckCode
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, encode_frame

SAMPLES = Path(__file__).resolve().parents[2] / "hl7_samples"

# What the receiver does with a message: an ACK payload to send, or None to stay silent.
Answer = Callable[[bytes], bytes | None]


def header_of(payload: bytes) -> Header:
    return Header.from_message(Message.parse(payload.decode("latin-1")))


def ack(payload: bytes, code: str = "AA", text: str = "", control_id: str | None = None) -> bytes:
    header = header_of(payload)
    if control_id is not None:
        header = dataclasses.replace(header, control_id=control_id)
    return AckBuilder().build(header, AckCode(code), text).encode("latin-1")


def answer_all(code: str = "AA") -> Answer:
    return lambda payload: ack(payload, code)


@dataclass
class Receiver:
    """Records `(connection number, control id)` for each message, in arrival order."""

    answer: Answer
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    received: list[tuple[int, str]] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def control_ids(self) -> list[str]:
        return [control_id for _, control_id in self.received]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                decoder.feed(data)
                while (event := decoder.next_event()) is not NEED_DATA:
                    assert isinstance(event, Frame)
                    self.received.append((number, header_of(event.payload).control_id))
                    self.payloads.append(event.payload)
                    answer = self.answer(event.payload)
                    if answer is not None:
                        writer.write(encode_frame(answer))
                        await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[Answer], Awaitable[Receiver]]]:
    """`start(answer)` returns a started receiver; all are stopped after the test."""
    started: list[Receiver] = []

    async def start(answer: Answer) -> Receiver:
        server = Receiver(answer)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
def receiver_thread() -> Iterator[Callable[..., Receiver]]:
    """For tests that run the CLI, which runs its own event loop: receivers on another
    thread's loop. `start(answer, ssl_context=None)` returns a started receiver."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started: list[Receiver] = []

    def start(answer: Answer, ssl_context: ssl.SSLContext | None = None) -> Receiver:
        server = Receiver(answer, ssl_context)
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        started.append(server)
        return server

    yield start
    for server in started:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
