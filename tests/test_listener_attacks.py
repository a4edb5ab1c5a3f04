"""The real engine process under the faults of issue 24, on loopback: silent, trickling and
no-read connections at the limit leave the sender that completes messages its connection,
a connection whose ACK writes block is reset at the ACK timeout or displaced at the limit,
and a garbage flood writes a bounded number of lines and shows in a counter.

Before, the connection idle the longest was displaced: the sender, idle between messages,
was the one pushed out, and each garbage block or refused connection wrote a line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.mllp.client import MllpClient
from engine.mllp.codec import encode_frame
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.metrics import labelled, value
from tests.test_durability import stored_control_ids

pytestmark = pytest.mark.system

BOUND_S = 30.0
FLOOD = 1500  # messages at most on a connection that never reads its ACKs


def write_config(tmp_path: Path, route_keys: str) -> Path:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\nprocesses = 1\n'
        'log_format = "json"\n\n[http]\nlisten = "127.0.0.1:0"\n\n'
        f'[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n{route_keys}\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / "out"}"\n',
        encoding="utf-8",
    )
    return config


async def metrics(engine: EngineProcess) -> str:
    url = f"{engine.http_address()}/metrics"

    def get() -> str:
        with urllib.request.urlopen(url, timeout=BOUND_S) as answer:  # noqa: S310 - http://
            return str(answer.read().decode())

    return await asyncio.to_thread(get)


async def wait_for_metrics(engine: EngineProcess, condition: Callable[[str], bool]) -> str:
    async with asyncio.timeout(BOUND_S):
        while not condition(text := await metrics(engine)):  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.05)
    return text


def closed(text: str) -> dict[str, float]:
    return labelled(text, "ins_engine_mllp_connections_closed_total", "reason")


def refused(text: str) -> dict[str, float]:
    return labelled(text, "ins_engine_mllp_connections_refused_total", "reason")


def incidents(engine: EngineProcess, key: str) -> float:
    """A count summed over the `listener incidents` lines (one per interval, one at stop)."""
    return sum(line.get(key, 0) for line in engine.logged("listener incidents"))


async def test_silent_trickling_and_no_read_connections_leave_the_sender_its_slot(
    tmp_path: Path,
) -> None:
    async with EngineProcess(write_config(tmp_path, "max_connections = 4")) as engine:
        host, port = engine.address("adt")
        sender = await MllpClient.connect(host, port)
        assert b"MSA|AA" in await sender.exchange(adt("S0"), 10)
        attackers = []
        for number in range(12):
            reader, writer = await asyncio.open_connection(host, port)
            if number % 3 == 1:
                writer.write(b"\x0bMSH|")  # a block started, then nothing (slowloris)
            elif number % 3 == 2:
                writer.write(encode_frame(adt(f"N{number}")))  # its ACK never read
            attackers.append((reader, writer))
        # 12 newcomers at a limit of 4, one held by the sender: 9 displaced or refused at
        # least (one whose single ACK sits unread in the socket's buffers looks like a
        # sender that completed a block lately, and keeps its slot).
        text = await wait_for_metrics(
            engine, lambda text: sum(closed(text).values()) + sum(refused(text).values()) >= 9
        )
        assert set(closed(text)) == {"displaced_never_completed"}
        assert set(refused(text)) <= {"max_connections"}
        for number in range(1, 21):  # the sender keeps its connection throughout
            assert b"MSA|AA" in await sender.exchange(adt(f"S{number}"), 10)
        for _, writer in attackers:
            writer.close()
        await sender.close()
        await engine.terminate()
    displaced = [r for r in engine.logged("connection closed") if "displaced" in r["reason"]]
    assert 1 <= len(displaced) <= 5, "a few lines, the counts in the interval line"
    assert (
        incidents(engine, "displaced_never_completed") == closed(text)["displaced_never_completed"]
    )
    assert {line["address"] for line in engine.logged("listener incidents")} == {"127.0.0.1"}


async def test_a_garbage_flood_writes_a_bounded_number_of_lines_and_is_counted(
    tmp_path: Path,
) -> None:
    async with EngineProcess(write_config(tmp_path, "")) as engine:
        host, port = engine.address("adt")
        reader, writer = await asyncio.open_connection(host, port)
        flood = os.urandom(2**20)  # about 4,000 blocks and as many runs of junk
        writer.write(flood + b"\x1c\r" + encode_frame(adt("AFTER")))
        answers = b""
        async with asyncio.timeout(BOUND_S):
            while b"MSA|AA|AFTER" not in answers:
                answers += await reader.read(65536)
        writer.close()
        text = await metrics(engine)
        junk = value(text, "ins_engine_mllp_junk_bytes_total", route="adt")
        ar = value(text, "ins_engine_messages_received_total", route="adt", ack_code="AR")
        assert junk is not None and junk > 2**19
        assert ar is not None and ar > 1000
        listener_lines = [r for r in engine.records if r.get("logger") == "engine.inbound.listener"]
        assert len(listener_lines) <= 20, [r["event"] for r in listener_lines]
        await engine.terminate()
    assert incidents(engine, "junk_bytes") == junk
    assert incidents(engine, "messages_refused") == ar
    assert incidents(engine, "lines_left_out") > 1000


def never_reading(host: str, port: int) -> socket.socket:
    """A connection that never reads. Its receive buffer (the window it offers) is the
    smallest the kernel allows, and its segment size is small too, both set before connect:
    the engine's kernel sizes its send buffer from the segment size, so a few hundred ACKs
    fill both and the engine's next ACK write blocks (some 20,000 with loopback's 64 KB
    segments)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock


def header_only(control_id: str) -> bytes:
    """A message shorter than its ACK: the engine reads all FLOOD of them (117 KB, within
    what its stream buffers before it stops reading the socket), so the kernel holds none
    unread and closing the socket does not by itself reset the connection."""
    return (
        f"MSH|^~\\&|PAS|HOSP|INS-ENGINE|HOSP|20240101120000||ADT^A28^ADT_A05|{control_id}|P|2.5\r"
    ).encode()


async def flood(sock: socket.socket, control_ids: list[str]) -> int:
    """Send the messages, waiting for room, never reading; the number sent before the
    engine closed the connection."""
    loop = asyncio.get_running_loop()
    for sent, control_id in enumerate(control_ids):
        try:
            await loop.sock_sendall(sock, encode_frame(header_only(control_id)))
        except OSError:
            return sent
    return len(control_ids)


async def hung_up(sock: socket.socket) -> None:
    """Wait until the engine closed or reset the connection, without reading from it (a
    read would let the engine write its ACKs out, and a close that waits for them end)."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    events = await asyncio.to_thread(poller.poll, BOUND_S * 1000)
    assert events, "the engine left the connection open"


def acked(sock: socket.socket) -> list[str]:
    """The control ids of the AA the connection received, read once the engine closed it."""
    sock.setblocking(True)
    sock.settimeout(BOUND_S)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while data := sock.recv(65536):
            received += data
    return [found.decode() for found in re.findall(rb"MSA\|AA\|([^|\r]+)", received)]


async def send_throughout(sender: MllpClient, stop: asyncio.Event) -> list[str]:
    """One message after another until `stop`, each answered AA; their control ids."""
    sent: list[str] = []
    while not stop.is_set():
        control_id = f"S{len(sent)}"
        assert f"MSA|AA|{control_id}".encode() in await sender.exchange(adt(control_id), 10)
        sent.append(control_id)
    return sent


def decided(text: str) -> float:
    """Connections refused or closed by the engine."""
    return sum(closed(text).values()) + sum(refused(text).values())


def decided_beyond(count: float) -> Callable[[str], bool]:
    return lambda text: decided(text) > count


async def displace(engine: EngineProcess, host: str, port: int) -> str:
    """Newcomers at the limit, one at a time, each seen refused or displacing a connection,
    until one displaced a connection whose ACK is unread (those before it came while the
    engine was still reading that connection's blocks and were refused)."""
    newcomers = []
    text = await metrics(engine)
    async with asyncio.timeout(BOUND_S):
        while "displaced_ack_unread" not in closed(text):
            newcomers.append(await asyncio.open_connection(host, port))
            text = await wait_for_metrics(engine, decided_beyond(decided(text)))
    for _, writer in newcomers:
        writer.close()
    return text


@pytest.mark.parametrize(
    ("frame_timeout_s", "reason"),
    [(1, "ack_timeout"), (60, "displaced_ack_unread")],
    ids=["timed_out", "displaced"],
)
async def test_a_connection_that_never_reads_its_acks_is_closed_and_the_sender_is_not(
    tmp_path: Path, frame_timeout_s: int, reason: str
) -> None:
    config = write_config(tmp_path, f"max_connections = 2\nframe_timeout_s = {frame_timeout_s}")
    flooded = [f"N{number}" for number in range(FLOOD)]
    async with EngineProcess(config) as engine:
        host, port = engine.address("adt")
        sender = await MllpClient.connect(host, port)
        stop = asyncio.Event()
        sending = asyncio.create_task(send_throughout(sender, stop))
        with never_reading(host, port) as sock:
            flooding = asyncio.create_task(flood(sock, flooded))
            if reason == "ack_timeout":  # its ACK unread for frame_timeout_s
                text = await wait_for_metrics(engine, lambda text: reason in closed(text))
            else:  # a newcomer at the limit while its ACK is unread
                text = await displace(engine, host, port)
            await hung_up(sock)
            sent = await asyncio.wait_for(flooding, BOUND_S)
            received = acked(sock)
        stop.set()
        sender_acked = await asyncio.wait_for(sending, BOUND_S)
        assert b"MSA|AA|LAST" in await sender.exchange(adt("LAST"), 10)  # still connected
        await sender.close()
        after = await metrics(engine)
        await engine.terminate()
    assert closed(text) == closed(after) == {reason: 1}  # the sender's was never closed
    assert set(refused(after)) <= {"max_connections"}
    # In order, and not all: the rest were waiting to be written when it was closed.
    assert 0 < len(received) < sent
    assert received == flooded[: len(received)]
    stored = stored_control_ids(tmp_path / "engine.db")
    assert {*received, *sender_acked, "LAST"} <= set(stored)
    answered = value(after, "ins_engine_messages_received_total", route="adt", ack_code="AA")
    assert answered is not None and answered <= len(stored)  # each stored before its AA
