"""A real sender under attack on one listener, everything from 127.0.0.1: ratios to its baseline.

    PYTHONPATH=. .venv/bin/python -m bench.attack [--baseline-s 15] [--attack-s 30] [--flood-s 10]

Starts `ins-engine run` with the route's default listener settings (32 connections), its
log in a file. A real sender sends an ADT message every 20 ms on one connection, waits for
each ACK, and reconnects when the engine closes it (counted as a disconnect). Three phases:

1. baseline: the sender alone;
2. attack: 1,000 idle connections, 64 slowloris connections (a block started, then one
   byte a second) and 32 that send a message every 100 ms and never read their ACKs (a
   4 KB receive buffer); an attacker whose connection is closed opens another after
   `--retry-s`;
3. garbage: `--garbage` connections send random bytes at full speed (read and drop what
   comes back), the log's lines a second counted over the phase.

Targets (issue 24): under attack the sender keeps >= 80 % of its baseline ACK rate with
<= 5 disconnects and p99 <= 100 ms; under garbage the log writes <= 50 lines a second and
`ins_engine_mllp_junk_bytes_total` shows the flood. Every wait is bounded; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import socket
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.loadgen import LoadResult
from bench.messages import adt_message
from engine.mllp.client import MllpClient, MllpClientError
from engine.mllp.codec import encode_frame
from tests.support.engine_process import EngineProcess
from tests.support.metrics import value

SEND_EVERY_S = 0.02
ACK_TIMEOUT_S = 60.0


@dataclass
class Sender:
    """The real sender: one message every 20 ms, one outstanding, reconnecting if closed."""

    port: int
    latencies_ms: list[float] = field(default_factory=list)
    disconnects: int = 0
    number: int = 0

    async def run(self, seconds: float) -> LoadResult:
        self.latencies_ms = []
        self.disconnects = 0
        client: MllpClient | None = None
        started = time.perf_counter()
        next_at = started
        while time.perf_counter() - started < seconds:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at += SEND_EVERY_S
            self.number += 1
            sent = time.perf_counter()
            try:
                if client is None:
                    client = await MllpClient.connect("127.0.0.1", self.port)
                await client.exchange(adt_message(self.number), ACK_TIMEOUT_S)
            except MllpClientError:
                self.disconnects += 1
                client = None
                continue
            self.latencies_ms.append((time.perf_counter() - sent) * 1000)
        if client is not None:
            await client.close()
        return LoadResult(
            len(self.latencies_ms), time.perf_counter() - started, self.latencies_ms, 0
        )


async def hold(port: int, retry_s: float, behave: str, stop: asyncio.Event) -> None:
    """One attacker connection, reopened `retry_s` after the engine closes it."""
    while not stop.is_set():
        writer = None
        try:
            sock = socket.socket()
            sock.setblocking(False)
            if behave == "no-read":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
            if behave == "idle":
                await reader.read(1)  # returns when the engine closes it
            elif behave == "slowloris":
                writer.write(b"\x0bMSH|")
                while not stop.is_set() and not reader.at_eof():
                    await asyncio.sleep(1.0)
                    writer.write(b"x")
                    await asyncio.wait_for(writer.drain(), 5)
            else:
                number = 0
                while not stop.is_set():
                    number += 1
                    writer.write(encode_frame(adt_message(10**8 + number)))
                    await asyncio.wait_for(writer.drain(), 60)
                    await asyncio.sleep(0.1)
        except (OSError, TimeoutError):
            pass
        finally:
            if writer is not None:
                writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_s)


async def garbage(port: int, stop: asyncio.Event) -> None:
    """Random bytes at full speed; what comes back is read and dropped."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue

        dropping = asyncio.create_task(drop(reader))
        try:
            while not stop.is_set() and not reader.at_eof():
                writer.write(os.urandom(16384))
                await asyncio.wait_for(writer.drain(), 5)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()
            dropping.cancel()


async def drop(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


def metric(http_port: int, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as answer:
        return value(answer.read().decode(), name, **labels) or 0.0


def log_lines(engine: EngineProcess, since: float, until: float) -> int:
    """Lines the engine wrote between two wall-clock times (by their timestamps)."""
    stamps = [record.get("timestamp", "") for record in list(engine.records)]
    return sum(
        1
        for stamp in stamps
        if stamp
        and since <= datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() < until
    )


async def attack(port: int, retry_s: float, kinds: list[str]) -> None:
    """Every attacker, until the process is terminated."""
    stop = asyncio.Event()
    await asyncio.gather(
        *(
            garbage(port, stop) if kind == "garbage" else hold(port, retry_s, kind, stop)
            for kind in kinds
        )
    )


def run_attackers(port: int, retry_s: float, kinds: list[str]) -> None:
    asyncio.run(attack(port, retry_s, kinds))


@contextlib.contextmanager
def attacking(port: int, retry_s: float, kinds: list[str]) -> Iterator[None]:
    """The attackers in a process of their own, so that their work does not delay the
    sender's event loop (the figures are the engine's)."""
    process = multiprocessing.get_context("fork").Process(
        target=run_attackers, args=(port, retry_s, kinds), daemon=True
    )
    process.start()
    try:
        yield
    finally:
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()


def figures(result: LoadResult, sender: Sender) -> dict[str, float]:
    return {
        "ack_per_s": round(result.rate, 1),
        "p50_ms": round(result.percentile(50), 2),
        "p99_ms": round(result.percentile(99), 2),
        "max_ms": round(max(result.latencies_ms, default=0.0), 2),
        "disconnects": sender.disconnects,
    }


async def scenario(args: argparse.Namespace, engine: EngineProcess) -> dict:
    port = engine.address("bench")[1]
    http_port = int(engine.http_address().rsplit(":", 1)[1])
    sender = Sender(port)
    report: dict = {}
    baseline = await sender.run(args.baseline_s)
    report["baseline"] = figures(baseline, sender)

    kinds = ["idle"] * args.idle + ["slowloris"] * args.slowloris + ["no-read"] * args.no_read
    with attacking(port, args.retry_s, kinds):
        attacked = await sender.run(args.attack_s)
    report["attack"] = figures(attacked, sender)
    report["attack"]["closed_by_engine"] = {
        reason: metric(
            http_port, "ins_engine_mllp_connections_closed_total", route="bench", reason=reason
        )
        for reason in (
            "displaced_never_completed",
            "displaced_slow_block",
            "displaced_ack_unread",
            "displaced_idle",
            "frame_timeout",
            "ack_timeout",
            "idle_timeout",
        )
    }
    report["attack"]["refused"] = {
        reason: metric(
            http_port, "ins_engine_mllp_connections_refused_total", route="bench", reason=reason
        )
        for reason in ("accept_rate", "max_connections", "max_connections_per_address")
    }

    junk_before = metric(http_port, "ins_engine_mllp_junk_bytes_total", route="bench")
    since = time.time()
    with attacking(port, args.retry_s, ["garbage"] * args.garbage):
        flooded = await sender.run(args.flood_s)
    until = time.time()
    report["garbage"] = figures(flooded, sender)
    report["garbage"]["junk_bytes"] = (
        metric(http_port, "ins_engine_mllp_junk_bytes_total", route="bench") - junk_before
    )
    report["garbage"]["refused_messages_ar"] = metric(
        http_port, "ins_engine_messages_received_total", route="bench", ack_code="AR"
    )
    report["garbage"]["log_lines_per_s"] = round(
        log_lines(engine, since, until) / (until - since), 1
    )
    return report


async def run(args: argparse.Namespace, engine: EngineProcess) -> dict:
    async with engine:
        report = await scenario(args, engine)
        await engine.terminate()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-s", type=float, default=15.0)
    parser.add_argument("--attack-s", type=float, default=30.0)
    parser.add_argument("--flood-s", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slowloris", type=int, default=64)
    parser.add_argument("--no-read", type=int, default=32)
    parser.add_argument("--garbage", type=int, default=4)
    parser.add_argument("--retry-s", type=float, default=1.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "engine.toml"
        config.write_text(
            f'[engine]\nstore = "sqlite:///{folder}/engine.db"\nlog_format = "json"\n\n'
            '[http]\nlisten = "127.0.0.1:0"\n\n'
            '[[routes]]\nname = "bench"\nlisten = "127.0.0.1:0"\nenrich = false\n'
            f'[[routes.destinations]]\nname = "archive"\nfile = "{folder}/out"\n',
            encoding="utf-8",
        )
        report = asyncio.run(run(args, EngineProcess(config)))
    base, attack, flood = report["baseline"], report["attack"], report["garbage"]
    report["ratios"] = {
        "attack_ack_rate": round(attack["ack_per_s"] / base["ack_per_s"], 2),
        "garbage_ack_rate": round(flood["ack_per_s"] / base["ack_per_s"], 2),
    }
    report["targets"] = {
        "attack: ACK rate >= 0.80x baseline": report["ratios"]["attack_ack_rate"] >= 0.8,
        "attack: <= 5 disconnects": attack["disconnects"] <= 5,
        "attack: p99 <= 100 ms": attack["p99_ms"] <= 100,
        "garbage: <= 50 log lines/s": flood["log_lines_per_s"] <= 50,
        "garbage: junk bytes counted": flood["junk_bytes"] > 0,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
