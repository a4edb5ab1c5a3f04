"""What keeping the SQLite WAL small costs the ACKs, as ratios to a baseline of the same run.

The only work checkpoints add on the ACK path is the writer's pause, between two group
commits, once the WAL has passed `wal_limit_mb` (`engine.store.sqlite_wal`). The baseline is
the same engine with a limit the run never reaches (4096 MB: checkpoints run beside the
writer only, as before the limit existed, and the WAL grows); the default (64 MB) and a
small limit (4 MB, a pause every few hundred messages) are compared with it. Setups take
turns, round after round, so a neighbour's load on the machine falls on each of them alike;
each figure is the median of the rounds. The engine receives, stores and answers
(a destination that takes nothing); the peak WAL file size is sampled every 10 ms.

    .venv/bin/python bench/wal_checkpoints.py [--messages 20000] [--connections 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import run_load  # noqa: E402
from bench.messages import adt_message  # noqa: E402
from tests.support.engine_process import EngineProcess  # noqa: E402
from tests.support.peak_size import PeakSize  # noqa: E402

BASELINE = 4096
LIMITS = (BASELINE, 64, 4)
SAMPLE_S = 0.01  # how often the WAL's size is sampled


def configure(folder: Path, limit_mb: int) -> Path:
    """A new engine's configuration, its store in a folder of its own under `folder`."""
    run = folder / str(len(list(folder.iterdir())))
    run.mkdir()
    config = run / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{run}/engine.db"\nlog_format = "json"\n'
        f"wal_limit_mb = {limit_mb}\n\n"
        '[[routes]]\nname = "bench"\nlisten = "127.0.0.1:0"\nenrich = false\n\n'
        '[[routes.destinations]]\nname = "none"\nfile = "out"\n'
        'accept = ["NONE^NONE"]\n',  # a destination that takes nothing: receive, store, answer
        encoding="utf-8",
    )
    return config


async def measure(config: Path, messages: int, connections: int) -> dict[str, float]:
    async with EngineProcess(config, env={"PYTHONPATH": str(ROOT)}) as engine:
        host, port = engine.address("bench")
        with PeakSize(config.parent / "engine.db-wal", SAMPLE_S) as wal:
            result = await run_load(host, port, adt_message, messages, connections)
    if result.negative:
        raise RuntimeError(f"{result.negative} negative ACKs: the engine refused messages")
    return {**result.summary(), "peak_wal_mb": round(wal.peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[int, list[dict[str, float]]] = {limit: [] for limit in LIMITS}
    with tempfile.TemporaryDirectory(prefix="bench-wal-") as folder:
        for _ in range(args.rounds):
            for limit in LIMITS:
                config = configure(Path(folder), limit)
                found = measure(config, args.messages, args.connections)
                runs[limit].append(asyncio.run(found))
    medians = {
        limit: {key: statistics.median(run[key] for run in found) for key in found[0]}
        for limit, found in runs.items()
    }
    base = medians[BASELINE]
    print(f"{args.messages} messages, {args.connections} connections, median of {args.rounds}")
    print("| wal_limit_mb | msg/s | ACK p50 ms | ACK p99 ms | peak WAL MB | p50 ratio | p99 ratio")
    print("|---|---|---|---|---|---|---")
    for limit, median in medians.items():
        print(
            f"| {limit}{' (baseline)' if limit == BASELINE else ''} | {median['msg_per_s']:.0f} "
            f"| {median['p50_ms']:.2f} | {median['p99_ms']:.2f} | {median['peak_wal_mb']:.1f} "
            f"| {median['p50_ms'] / base['p50_ms']:.2f} | {median['p99_ms'] / base['p99_ms']:.2f}"
        )


if __name__ == "__main__":
    main()
