"""The MLLP client against raw loopback servers: blocks in pieces, no answer, a peer that
closes, and a connection never reused after a failed exchange."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from engine.mllp.client import AckTimeout, MllpClient, MllpClientError
from engine.mllp.codec import encode_frame
from tests.support.waiting import HANG_GUARD_S

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
MESSAGE = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A28|C1|P|2.5\r"
ACK = b"MSH|^~\\&|C|D|A|B|20240101||ACK|A1|P|2.5\rMSA|AA|C1\r"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[MllpClient]]]:
    servers: list[asyncio.Server] = []
    clients: list[MllpClient] = []

    async def start(handler: Handler) -> MllpClient:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await handler(reader, writer)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        client = await MllpClient.connect("127.0.0.1", server.sockets[0].getsockname()[1])
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_an_ack_in_pieces_after_junk_is_the_answer(serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\x1c\r"):
            for byte in b"junk" + encode_frame(ACK):
                writer.write(bytes([byte]))
                await writer.drain()

    client = await serve(handler)
    async with asyncio.timeout(HANG_GUARD_S):
        assert await client.exchange(MESSAGE, 5) == ACK
        assert await client.exchange(MESSAGE, 5) == ACK


async def test_no_ack_in_time_closes_the_connection(serve) -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\x1c\r")
        writer.write(encode_frame(ACK))  # the first is answered, the second never
        await reader.readuntil(b"\x1c\r")
        await reader.read()  # until the client closes
        closed.set()

    client = await serve(handler)
    async with asyncio.timeout(HANG_GUARD_S):
        assert await client.exchange(MESSAGE, 30) == ACK
        with pytest.raises(AckTimeout, match=r"within 0\.2 s"):  # sooner than the first's
            await client.exchange(MESSAGE, 0.2)
        await closed.wait()
    assert client.closed
    with pytest.raises(MllpClientError, match="connection is closed"):
        await client.exchange(MESSAGE, 5)


async def test_a_peer_closing_before_its_ack_fails_the_exchange(serve) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\x1c\r")
        writer.close()

    client = await serve(handler)
    async with asyncio.timeout(HANG_GUARD_S):
        with pytest.raises(MllpClientError, match="closed by peer before acknowledgement"):
            await client.exchange(MESSAGE, 30)
    assert client.closed and client.peer_closed
