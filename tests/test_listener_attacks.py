"""The real engine process under the faults of issue 24, on loopback: silent, trickling and
no-read connections at the limit leave the sender that completes messages its connection,
and a garbage flood writes a bounded number of lines and shows in a counter.

Before, the connection idle the longest was displaced: the sender, idle between messages,
was the one pushed out, and each garbage block or refused connection wrote a line.
"""

from __future__ import annotations

import asyncio
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

from engine.mllp.client import MllpClient
from engine.mllp.codec import encode_frame
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.metrics import labelled, value

BOUND_S = 30.0


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
        listener_lines = [r for r in engine.records if r.get("logger") == "engine.listener"]
        assert len(listener_lines) <= 20, [r["event"] for r in listener_lines]
        await engine.terminate()
    assert incidents(engine, "junk_bytes") == junk
    assert incidents(engine, "messages_refused") == ar
    assert incidents(engine, "lines_left_out") > 1000
