"""MLLP servers the engine is compared with, each run in its own process.

    python -m bench.servers bare --port 2600       # the ceiling: canned ACK, no parsing
    python -m bench.servers python-hl7 --port 2601 # python-hl7 start_hl7_server + create_ack
    python -m bench.servers hl7apy --port 2602     # hl7apy MLLPServer, a handler per type
    python -m bench.servers receiver --port 2603 --record FILE
                                                   # downstream: AA echoing MSH-10, records
                                                   # each control id's arrival time

A server prints `ready` on stdout once it listens, then serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable

from hl7.mllp import start_hl7_server

from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, encode_frame

CANNED_ACK = encode_frame(b"MSH|^~\\&|BENCH|BENCH|X|X|20240101||ACK^A28^ACK|1|P|2.5\rMSA|AA|1\r")


def frame_server(
    answer: Callable[[bytes], bytes],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A connection handler writing `answer(payload)` for every block received."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            decoder.feed(data)
            while (event := decoder.next_event()) is not NEED_DATA:
                if isinstance(event, Frame):
                    writer.write(answer(event.payload))
        writer.close()

    return serve


async def bare(port: int) -> None:
    """Answer every block with the same ACK: what asyncio itself can do."""
    server = await asyncio.start_server(frame_server(lambda _: CANNED_ACK), "127.0.0.1", port)
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


async def hl7apy_server(port: int) -> None:
    """hl7apy's MLLPServer (threaded, one message per connection) parsing with hl7apy."""
    from hl7apy.core import Message
    from hl7apy.mllp import AbstractHandler, MLLPServer
    from hl7apy.parser import parse_message

    class AckHandler(AbstractHandler):  # type: ignore[misc]
        def reply(self) -> str:
            received = parse_message(self.incoming_message, find_groups=False)
            ack = Message("ACK", version="2.5")
            ack.msh.msh_9 = "ACK^A28^ACK"
            ack.msa.msa_1 = "AA"
            ack.msa.msa_2 = received.msh.msh_10.value
            return "\x0b" + ack.to_er7() + "\r\x1c\r"

    server = MLLPServer("127.0.0.1", port, {"ADT^A28^ADT_A05": (AckHandler,)})
    print("ready", flush=True)
    await asyncio.to_thread(server.serve_forever)


async def receiver(port: int, record: str) -> None:
    """A downstream system: answers AA with MSA-2 = MSH-10 and notes when each arrived.

    Arrival lines (`control_id monotonic_time`) are flushed to `record` every 100 ms, so a
    benchmark can watch deliveries complete.
    """
    with open(record, "a", encoding="ascii") as out:  # noqa: ASYNC230 - buffered appends

        def answer(payload: bytes) -> bytes:
            control_id = payload.split(b"\r", 1)[0].split(b"|")[9]
            out.write(f"{control_id.decode()} {time.monotonic()}\n")
            return encode_frame(
                b"MSH|^~\\&|RCV|RCV|INS|INS|20240101||ACK^A28^ACK|R"
                + control_id
                + b"|P|2.5\rMSA|AA|"
                + control_id
                + b"\r"
            )

        server = await asyncio.start_server(frame_server(answer), "127.0.0.1", port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        while not stop.is_set():
            out.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
        server.close()


SERVERS = {"bare": bare, "python-hl7": python_hl7, "hl7apy": hl7apy_server}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted([*SERVERS, "receiver"]))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", help="receiver: file of control ids and arrival times")
    args = parser.parse_args()
    if args.kind == "receiver":
        asyncio.run(receiver(args.port, args.record))
    else:
        asyncio.run(SERVERS[args.kind](args.port))


if __name__ == "__main__":
    main()
