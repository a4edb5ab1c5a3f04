"""The load generator every benchmark uses: K connections, one outstanding message each.

Each connection sends a message, waits for its ACK, and sends the next, as a classic MLLP
sender does. Latency is measured per message from the write to the ACK's arrival.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.mllp.client import MllpClient

MessageFactory = Callable[[int], bytes]


@dataclass(frozen=True)
class LoadResult:
    messages: int
    seconds: float
    latencies_ms: list[float]
    negative: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "messages": self.messages,
            "msg_per_s": round(self.rate, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 3) if self.latencies_ms else 0,
            "negative_acks": self.negative,
        }


async def run_load(
    host: str,
    port: int | Sequence[int],
    make_message: MessageFactory,
    total: int,
    connections: int,
    rate_limit: float | None = None,
    reconnect: bool = False,
    sent_at: dict[str, float] | None = None,
) -> LoadResult:
    """Send `total` messages over `connections` connections; numbering is global.

    `reconnect` opens a connection per message, for servers that close after each one
    (hl7apy's MLLPServer); the connect is then part of the latency. `sent_at`, when given,
    receives each message's control id and send time (time.monotonic), so a downstream
    receiver's arrival times give end-to-end latency. With several ports (engines sharing a
    store), connections are spread over them in turn.
    """
    ports = [port] if isinstance(port, int) else list(port)
    counter = iter(range(total))
    latencies: list[float] = []
    negative = 0
    interval = connections / rate_limit if rate_limit else 0.0

    async def sender(port: int) -> None:
        nonlocal negative
        client = None if reconnect else await MllpClient.connect(host, port)
        try:
            next_at = time.perf_counter()
            for number in counter:
                if interval:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_at += interval
                message = make_message(number)
                started = time.perf_counter()
                if sent_at is not None:
                    sent_at[control_id(message)] = time.monotonic()
                if reconnect:
                    client = await MllpClient.connect(host, port)
                assert client is not None
                ack = await client.exchange(message, 60)
                latencies.append((time.perf_counter() - started) * 1000)
                if reconnect:
                    await client.close()
                if b"|AA|" not in ack and b"|CA|" not in ack:
                    negative += 1
        finally:
            if client is not None:
                await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(sender(ports[n % len(ports)]) for n in range(connections)))
    return LoadResult(total, time.perf_counter() - started, latencies, negative)


def control_id(message: bytes) -> str:
    """MSH-10 of a message, read without parsing the rest."""
    return message.split(b"\r", 1)[0].split(b"|")[9].decode()
