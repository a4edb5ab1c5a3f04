"""How long the disk takes to make a write durable, where the store lives.

Every acknowledgement waits for the group commit holding its message, and a commit waits for
one fsync: with K senders each waiting for its ACK, the best an engine can do is K messages
per (fsync + the time K bare round trips take), the durable limit the ACK path is held to.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

BLOCK = 4096
SAMPLES = 300


def fsync_latency(folder: Path, samples: int = SAMPLES) -> dict[str, float]:
    """Median and 99th percentile, in milliseconds, of a 4 KB write and its fsync."""
    path = folder / "fsync-probe"
    block = os.urandom(BLOCK)
    timings = []
    descriptor = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for number in range(samples):
            started = time.perf_counter()
            os.pwrite(descriptor, block, (number % 64) * BLOCK)
            os.fsync(descriptor)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(descriptor)
        path.unlink()
    ordered = sorted(timings)
    return {
        "samples": samples,
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
    }


def durable_limit(connections: int, fsync_median_ms: float, bare_rate: float) -> float:
    """Acknowledged messages per second the ACK path could reach with `connections` senders:
    each group commit pays one fsync, and the round trips themselves cost what the bare
    server's take (`bare_rate` at the same K)."""
    return connections / (fsync_median_ms / 1000 + connections / bare_rate)
