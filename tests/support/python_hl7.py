"""python-hl7's own asyncio MLLP server as a third-party receiver, answering `create_ack()`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import hl7
from hl7.mllp import start_hl7_server


@dataclass
class PythonHl7Receiver:
    port: int = 0
    control_ids: list[str] = field(default_factory=list)  # MSH-10 of each message received


@contextlib.asynccontextmanager
async def python_hl7_receiver(encoding: str = "latin-1") -> AsyncIterator[PythonHl7Receiver]:
    """Serve on a free loopback port until the block ends. python-hl7 decodes and encodes
    with one codec, whatever MSH-18 says, and its ACKs have no MSH-18: Latin-1 reads any
    byte, so UTF-8 messages pass too."""
    receiver = PythonHl7Receiver()

    async def serve(reader: hl7.mllp.HL7StreamReader, writer: hl7.mllp.HL7StreamWriter) -> None:
        try:
            while True:
                message = await reader.readmessage()
                receiver.control_ids.append(str(message.segment("MSH")(10)))
                writer.writemessage(message.create_ack())
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await start_hl7_server(serve, "127.0.0.1", 0, encoding=encoding)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
