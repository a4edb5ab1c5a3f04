"""MLLP servers the engine is compared with, each run in its own process.

    python -m bench.servers bare --port 2600       # the ceiling: canned ACK, no parsing
    python -m bench.servers python-hl7 --port 2601 # python-hl7 start_hl7_server + create_ack

A server prints `ready` on stdout once it listens, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio

from hl7.mllp import start_hl7_server

from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, encode_frame

CANNED_ACK = encode_frame(b"MSH|^~\\&|BENCH|BENCH|X|X|20240101||ACK^A28^ACK|1|P|2.5\rMSA|AA|1\r")


async def bare(port: int) -> None:
    """Answer every block with the same ACK: what asyncio itself can do."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            decoder.feed(data)
            while (event := decoder.next_event()) is not NEED_DATA:
                if isinstance(event, Frame):
                    writer.write(CANNED_ACK)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()


async def python_hl7(port: int) -> None:
    """python-hl7's asyncio MLLP server answering `create_ack()`, as its docs show."""

    async def serve(reader, writer) -> None:  # type: ignore[no-untyped-def]
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                writer.writemessage(message.create_ack())
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await start_hl7_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    await server.serve_forever()


SERVERS = {"bare": bare, "python-hl7": python_hl7}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(SERVERS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(SERVERS[args.kind](args.port))


if __name__ == "__main__":
    main()
