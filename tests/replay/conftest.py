"""The replay tests' receivers: the shared MLLP receiver answering with the engine's own ACK
builder, on the test's loop or, for the CLI (which runs its own loop), on another thread's."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from engine.hl7.ack import AckBuilder, AckCode
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.testing.receiver import Handler, Received, Receiver, Reply

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


def replying(answer: Answer) -> Handler:
    """The shared receiver's handler for an answer made from the payload alone."""

    def handler(received: Received) -> Reply | None:
        payload = answer(received.payload)
        return None if payload is None else Reply(payload)

    return handler


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[Answer], Awaitable[Receiver]]]:
    """`start(answer)` returns a started receiver; all are stopped after the test."""
    started: list[Receiver] = []

    async def start(answer: Answer) -> Receiver:
        server = await Receiver(replying(answer)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


@pytest.fixture
def receiver_thread() -> Iterator[Callable[..., Receiver]]:
    """For tests that run the CLI, which runs its own event loop: receivers on another
    thread's loop. `start(answer, ssl_context=None)` returns a started receiver."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started: list[Receiver] = []

    def start(answer: Answer, ssl_context: ssl.SSLContext | None = None) -> Receiver:
        server = Receiver(replying(answer), ssl_context=ssl_context)
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        started.append(server)
        return server

    yield start
    for server in started:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
