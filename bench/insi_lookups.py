"""INSi lookups per second against the simulator, compared with the theoretical ceiling.

Each lookup is a distinct synthetic person found on the first call (no cache, no
single-flight sharing), so lookups/s is calls/s. With a simulator latency L and
`max_concurrency` C, no client can exceed C / L; the ratio to it measures the client's own
overhead (zeep encoding, parsing, HTTP, event loop).

    .venv/bin/python bench/insi_lookups.py --mode http --latency-ms 50 --concurrency 8
    .venv/bin/python bench/insi_lookups.py --mode in-process --latency-ms 50 --concurrency 64

`http` runs `ins-engine insi-sim` as a separate process (real loopback sockets);
`in-process` uses the simulator behind the in-memory httpx transport (`[insi]` without url).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.base.logs import configure_logging  # noqa: E402
from engine.ins.outcome import SearchStatus  # noqa: E402
from engine.ins.service import open_insi_service  # noqa: E402
from engine.ins.settings import InsiSettings  # noqa: E402
from engine.ins.simulator.synthetic import synthetic_persons  # noqa: E402

SEED = 20240506


def start_simulator(persons: int, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    """`ins-engine insi-sim` on a free loopback port; returns the process and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "insi-sim",
            "--listen",
            "127.0.0.1:0",
            "--synthetic",
            str(persons),
            "--seed",
            str(SEED),
            "--latency-ms",
            str(latency_ms),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "SIMULATOR ready" in line:
            return process, json.loads(line)["url"]
    raise SystemExit("the simulator did not start")


async def run(args: argparse.Namespace, url: str | None) -> dict[str, object]:
    settings = InsiSettings(
        url=url,
        idam="BENCH",
        max_concurrency=args.concurrency,
        cache_ttl_s=0.0,
        timeout_s=10.0,
        simulator_synthetic=args.persons,
        simulator_seed=SEED,
        simulator_latency_ms=args.latency_ms if url is None else 0.0,
    )
    persons = synthetic_persons(args.persons, SEED)[: args.lookups]
    service = await open_insi_service(settings)
    try:
        await asyncio.gather(*(service.search(p.traits()) for p in persons[:20]))  # warm-up
        started, cpu_started = time.perf_counter(), time.process_time()
        outcomes = await asyncio.gather(*(service.search(p.traits()) for p in persons[20:]))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await service.aclose()
    statuses = Counter(o.status.value for o in outcomes)
    assert statuses == {SearchStatus.FOUND.value: len(outcomes)}, statuses
    rate = len(outcomes) / elapsed
    ceiling = args.concurrency / (args.latency_ms / 1000)
    return {
        "mode": args.mode,
        "lookups": len(outcomes),
        "calls": sum(o.calls for o in outcomes),
        "latency_ms": args.latency_ms,
        "max_concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "lookups_per_s": round(rate, 1),
        "ceiling_per_s": round(ceiling, 1),
        "ratio": round(rate / ceiling, 3),
        "engine_cpu_ms_per_lookup": round(cpu / len(outcomes) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("http", "in-process"), default="http")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--persons", type=int, default=10_000)
    args = parser.parse_args()
    # Production logging (JSON, one line per search), written nowhere: its cost is counted.
    configure_logging("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    if args.mode == "http":
        process, url = start_simulator(args.persons, args.latency_ms)
        try:
            result = asyncio.run(run(args, url))
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=10)
    else:
        result = asyncio.run(run(args, None))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
