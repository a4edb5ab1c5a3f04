"""ACK-path throughput: the bare asyncio ceiling, python-hl7, and ins-engine (listener +
durable store, no enrichment, no destination), measured in one run with one load generator.

    python -m bench.ack_path [--messages 5000] [--connections 1 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from bench.loadgen import run_load
from bench.messages import adt_message
from bench.processes import engine_config, free_port, server_process


async def measure(port: int, messages: int, connections: int) -> dict[str, float]:
    await run_load("127.0.0.1", port, adt_message, min(messages, 200), connections)  # warm-up
    return (
        await run_load("127.0.0.1", port, lambda n: adt_message(n + 10**6), messages, connections)
    ).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in ("bare", "python-hl7", "ins-engine"):
            results[name] = {}
            for connections in args.connections:
                port = free_port()
                if name == "ins-engine":
                    config = engine_config(Path(folder), port, "enrich = false")
                    command = ["-m", "engine", "run", "--config", str(config)]
                else:
                    command = ["-m", "bench.servers", name, "--port", str(port)]
                with server_process(command, port):
                    results[name][connections] = asyncio.run(
                        measure(port, args.messages, connections)
                    )
    ceiling = results["bare"]
    for name, by_k in results.items():
        for connections, summary in by_k.items():
            ratio = summary["msg_per_s"] / ceiling[connections]["msg_per_s"]
            print(
                f"{name:12s} K={connections:<3d} {summary['msg_per_s']:9.1f} msg/s "
                f"p50 {summary['p50_ms']:.3f} ms  p99 {summary['p99_ms']:.3f} ms  "
                f"{ratio:6.1%} of bare"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
