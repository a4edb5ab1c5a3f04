"""The SQLite store's WAL stays bounded under sustained load and is emptied when the engine is
idle; `/metrics` shows its size. Through the real engine, with its delivery process reading
beside the writer and a destination that takes every message, as in production."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from engine.mllp.client import MllpClient
from tests.delivery.harness import eventually
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.metrics import value
from tests.support.peak_size import PeakSize

pytestmark = pytest.mark.system

LIMIT_MB = 2
# The bound README states: the limit and what one checkpoint round lets in meanwhile (one
# group commit, what arrives while the bulk is copied), far below the limit here.
BOUND = 2 * LIMIT_MB * 2**20
MESSAGES, CONNECTIONS = 2000, 16  # about 18 MB of WAL without the limit, over four times BOUND
IDLE_WAIT_S = 60.0  # the delivery of the backlog, then a second without a commit


async def _send(address: tuple[str, int], numbers: range) -> None:
    """One sender: each message after the previous one's ACK."""
    client = await MllpClient.connect(*address)
    try:
        for number in numbers:
            ack = await client.exchange(adt(f"W{number:05d}", patient_id=f"P{number % 97}"), 30)
            assert b"|AA|" in ack
    finally:
        await client.close()


async def _wal_metric(engine: EngineProcess) -> float | None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(engine.http_address() + "/metrics") as answer,
    ):
        return value(await answer.text(), "ins_engine_store_wal_bytes")


async def test_the_wal_stays_bounded_under_load_and_is_emptied_when_idle(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path}/engine.db"\nlog_format = "json"\n'
        f"processes = 2\nwal_limit_mb = {LIMIT_MB}\n\n"
        '[http]\nlisten = "127.0.0.1:0"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / "out"}"\n',
        encoding="utf-8",
    )
    async with EngineProcess(config) as engine:
        address = engine.address("adt")
        share = MESSAGES // CONNECTIONS
        with PeakSize(tmp_path / "engine.db-wal") as wal:
            senders = [
                asyncio.create_task(_send(address, range(n * share, (n + 1) * share)))
                for n in range(CONNECTIONS)
            ]
            await asyncio.gather(*senders[: CONNECTIONS // 2])  # half of them done
            under_load = await _wal_metric(engine)
            await asyncio.gather(*senders)
        assert 0 < wal.peak <= BOUND, f"the WAL reached {wal.peak / 2**20:.1f} MiB"
        assert under_load is not None and 0 < under_load <= BOUND

        async def emptied() -> bool:  # once nothing is committed for a while
            return await _wal_metric(engine) == 0

        await eventually(emptied, IDLE_WAIT_S)
        delivered = (tmp_path / "out").iterdir()
        assert len(list(delivered)) == MESSAGES
