"""The real engine under a 256 file-descriptor limit, flooded with idle and half-sent HTTP
connections: the HTTP listener stays within its share, the MLLP sender keeps its ACKs, and
when descriptors do run out one line, `/readyz` and a metric say so.

Before the HTTP listener had a cap and deadlines, 300 such connections took every
descriptor and the MLLP listener could accept nothing, with nothing in the log.
"""

from __future__ import annotations

import asyncio
import json
import resource
from pathlib import Path

import pytest

from engine.mllp.client import MllpClient
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.metrics import value
from tests.support.waiting import until

pytestmark = pytest.mark.system

LIMIT = 256
FLOOD = 300  # more connections than the engine may hold descriptors
BOUND_S = 30.0


class KeptAlive:
    """One HTTP/1.1 connection opened before the flood, kept alive to ask the engine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, path: str) -> tuple[int, str]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: engine\r\n\r\n".encode())
        async with asyncio.timeout(BOUND_S):
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode()
            length = next(
                int(line.split(":")[1])
                for line in head.split("\r\n")
                if line.lower().startswith("content-length:")
            )
            body = await self.reader.readexactly(length)
        return int(head.split()[1]), body.decode()


async def failed_probes(monitor: KeptAlive) -> float:
    _, text = await monitor.get("/metrics")
    return value(text, "ins_engine_descriptors_exhausted_total", error="EMFILE") or 0.0


async def closed_by_engine(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass
    except ConnectionResetError:
        pass


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\nprocesses = 1\n'
        'log_format = "json"\n\n[insi]\nsimulator = true\n\n'
        '[http]\nlisten = "127.0.0.1:0"\nheader_timeout_s = 2.0\nidle_timeout_s = 120.0\n'
        "reserved_fds = 64\n\n"
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / "out"}"\n',
        encoding="utf-8",
    )
    return config


async def test_an_http_flood_leaves_mllp_its_descriptors_and_running_out_is_reported(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(write_config(tmp_path), nofile=LIMIT)
    async with engine:
        (ready,) = engine.logged("http listener ready")
        cap = ready["max_connections"]
        assert cap < LIMIT - 64, "the cap leaves the reserve"
        host, port = engine.http_address().removeprefix("http://").rsplit(":", 1)
        monitor = KeptAlive(*await asyncio.open_connection(host, int(port)))
        assert (await monitor.get("/readyz"))[0] == 200
        sender = await MllpClient.connect(*engine.address("adt"))
        assert b"MSA|AA" in await sender.exchange(adt("BEFORE"), 10)

        # (a) The flood: silent connections and half-sent requests, more than the limit.
        flood = []
        for number in range(FLOOD):
            reader, writer = await asyncio.open_connection(host, int(port))
            if number % 2:
                writer.write(b"GET /readyz HTTP/1.1\r\nHost: eng")
            flood.append((reader, writer))
        # (b) Meanwhile the MLLP sender gets its ACKs, on its connection and on a new one.
        assert b"MSA|AA" in await sender.exchange(adt("DURING"), 10)
        newcomer = await MllpClient.connect(*engine.address("adt"))
        assert b"MSA|AA" in await newcomer.exchange(adt("NEWCOMER"), 10)
        await newcomer.close()
        async with asyncio.timeout(BOUND_S):
            await asyncio.gather(*(closed_by_engine(reader) for reader, _ in flood))
        for _, writer in flood:
            writer.close()
        _, text = await monitor.get("/metrics")
        refused = value(text, "ins_engine_http_connections_closed_total", reason="max_connections")
        timed_out = value(text, "ins_engine_http_connections_closed_total", reason="header_timeout")
        assert refused is not None and refused >= FLOOD - cap
        assert timed_out is not None and refused + timed_out == FLOOD
        assert "ins_engine_descriptors_exhausted_total{" not in text
        assert b"MSA|AA" in await sender.exchange(adt("AFTER"), 10)

        # (c) Descriptors run out (the limit lowered under the running engine): the engine
        # says so once however long it lasts, and serves again once they are back.
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.prlimit(engine.pid, resource.RLIMIT_NOFILE, (3, hard))
        await until(lambda: bool(engine.logged("out of file descriptors")))
        async with asyncio.timeout(BOUND_S):  # three failed probes, a second apart
            while (await failed_probes(monitor)) < 3:  # noqa: ASYNC110 - nothing to wait on
                await asyncio.sleep(0.2)
        status, body = await monitor.get("/readyz")
        assert (status, json.loads(body)["descriptors"]) == (503, "exhausted")
        (line,) = engine.logged("out of file descriptors")
        assert (line["error"], line["level"]) == ("EMFILE", "error")

        resource.prlimit(engine.pid, resource.RLIMIT_NOFILE, (LIMIT, hard))
        returning = await MllpClient.connect(*engine.address("adt"))
        assert b"MSA|AA" in await returning.exchange(adt("RETURNING"), 10)
        await returning.close()
        await sender.close()
        monitor.writer.close()
