"""End-to-end delivery throughput: receive → store → route → deliver, one MLLP destination.

    python -m bench.e2e_delivery [--messages 10000] [--connections 8]

Runs, in the same session and on the same machine, (1) python-hl7's `start_hl7_server`
answering `create_ack` (a bare receiver: no storage, no forwarding) and (2) `ins-engine run`
(no enrichment) forwarding every message to a recording MLLP receiver; each server in its
own process, loaded by the same generator (K connections, one outstanding message each).
The engine's figure is messages delivered downstream per second, from the first send to
the last arrival; it also checks that nothing was lost and prints the ratio of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.loadgen import run_load
from bench.messages import adt_message
from bench.processes import engine_config, free_port, server_process

DELIVERY_TIMEOUT_S = 300.0


def python_hl7_rate(messages: int, connections: int) -> float:
    port = free_port()
    with server_process(["-m", "bench.servers", "python-hl7", "--port", str(port)], port):
        result = asyncio.run(run_load("127.0.0.1", port, adt_message, messages, connections))
    return result.rate


def engine_rates(messages: int, connections: int, folder: Path) -> dict[str, float]:
    port, downstream = free_port(), free_port()
    record = folder / "arrivals.txt"
    config = engine_config(
        folder,
        port,
        f'enrich = false\n[[routes.destinations]]\nname = "downstream"\n'
        f'mllp = "127.0.0.1:{downstream}"\n',
    )
    receiver = ["-m", "bench.servers", "receiver", "--port", str(downstream)]
    with (
        server_process([*receiver, "--record", str(record)], downstream),
        server_process(["-m", "engine", "run", "--config", str(config)], port),
    ):
        started = time.monotonic()
        result = asyncio.run(run_load("127.0.0.1", port, adt_message, messages, connections))
        arrivals = wait_for_arrivals(record, messages)
    last = max(arrivals.values())
    return {
        "acknowledged_per_s": round(result.rate, 1),
        "delivered": len(arrivals),
        "delivered_per_s": round(len(arrivals) / (last - started), 1),
    }


def wait_for_arrivals(record: Path, expected: int) -> dict[str, float]:
    """Arrival time per control id, once every message arrived (or the timeout passed)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        lines = record.read_text(encoding="ascii").splitlines() if record.exists() else []
        arrivals = {key: float(at) for key, at in (line.split() for line in lines)}
        if len(arrivals) >= expected or time.monotonic() > deadline:
            return arrivals
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = engine_rates(args.messages, args.connections, Path(folder))
    bare = python_hl7_rate(args.messages, args.connections)
    report = {
        "messages": args.messages,
        "connections": args.connections,
        "engine": engine,
        "python_hl7_bare_receiver_per_s": round(bare, 1),
        "engine_delivered_vs_python_hl7": round(engine["delivered_per_s"] / bare, 2),
        "lost": args.messages - int(engine["delivered"]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
