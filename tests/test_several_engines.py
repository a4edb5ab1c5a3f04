"""Several engines on one PostgreSQL store, as real processes and real sockets.

Three engines, four senders spread over them, 2,000 messages; the engine delivering the
destination is killed (SIGKILL) mid-stream; its senders move to a live engine and resend
what was not acknowledged. Every acknowledged message must reach the receiver, each
sender's messages in order; the messages sent twice (at-least-once) are counted and
reported. Then: an engine cut off from the database stops delivering before another
can take its lease, so the receiver never sees two deliverers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from engine.app.runtime import Engine
from engine.config.settings import load_config
from engine.mllp.client import MllpClient, MllpClientError
from engine.store.backends import open_store
from engine.testing.receiver import Received, Receiver, Reply, ack
from tests.conftest import fixed_acks
from tests.delivery.harness import eventually
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.system

ENGINES = 3
SENDERS = 4
MESSAGES = 2000
LEASE_S = 2.0
DELIVERY_LEASE = "delivery adt/down"


def engine_config(folder: Path, name: str, store: str, receiver: str, processes: int = 0) -> Path:
    """An engine on the shared store; `processes = 0`: with its delivery process on a
    machine with more than one core, as `ins-engine run` runs by default."""
    path = folder / f"{name}.toml"
    path.write_text(
        f'[engine]\nstore = "{store}"\nlease_s = {LEASE_S}\nlog_format = "json"\n'
        f"processes = {processes}\n"
        "shutdown_grace_s = 2\n\n"
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n\n'
        f'[[routes.destinations]]\nname = "down"\nmllp = "{receiver}"\n'
        "backoff_base_s = 0.05\nbackoff_cap_s = 0.2\n",
        encoding="utf-8",
    )
    return path


async def holder_of(url: str, lease: str) -> str:
    """The engine the lease's row names: its holder, or its last holder if a late renewal
    (a loaded machine) let it lapse a moment; not compared with this process's clock."""
    store = await open_store(url)
    try:
        for state in await store.leases():
            if state.name == lease:
                return state.holder
        return ""
    finally:
        await store.close()


@dataclass
class Sender:
    """One sending system: sends its messages in order, one at a time, each until ACKed,
    moving to another engine when its engine stops answering."""

    number: int
    engines: list[EngineProcess]
    acked: list[str] = field(default_factory=list)
    moves: int = 0

    def control_id(self, n: int) -> str:
        return f"S{self.number}-{n:04d}"

    async def run(self, count: int) -> None:
        target = self.number % len(self.engines)
        client: MllpClient | None = None
        for n in range(count):
            payload = adt(self.control_id(n), sender=f"PAS{self.number}", patient_id=f"P{n % 9}")
            while True:
                try:
                    if client is None:
                        client = await MllpClient.connect(*self.engines[target].address("adt"))
                    answer = await client.exchange(payload, 10)
                except (MllpClientError, OSError):
                    if client is not None:
                        await client.close()
                    client = None
                    target = self._next_live(target)
                    continue
                if b"MSA|AA|" in answer:
                    self.acked.append(self.control_id(n))
                    break
                await asyncio.sleep(0.05)  # AE: not stored; send it again
        if client is not None:
            await client.close()

    def _next_live(self, current: int) -> int:
        self.moves += 1
        for step in range(1, len(self.engines) + 1):
            candidate = (current + step) % len(self.engines)
            if self.engines[candidate].running:
                return candidate
        raise AssertionError("no engine left")


async def test_three_engines_a_killed_deliverer_loses_nothing_and_reorders_nothing(
    tmp_path: Path, postgres_url: str, record_property: pytest.RecordProperty
) -> None:
    async with Receiver() as downstream:
        engines = [
            EngineProcess(engine_config(tmp_path, f"engine{n}", postgres_url, downstream.address))
            for n in range(ENGINES)
        ]
        for engine in engines:
            await engine.start()
        try:
            ids = {engine.logged("engine started")[-1]["engine"]: engine for engine in engines}
            senders = [Sender(number, engines) for number in range(SENDERS)]
            sending = [asyncio.create_task(sender.run(MESSAGES // SENDERS)) for sender in senders]
            await downstream.wait_for(MESSAGES // 4, timeout_s=120)
            deliverer = await holder_of(postgres_url, DELIVERY_LEASE)
            # The engine itself (its delivery process, when it has one, dies with it).
            ids[deliverer.removesuffix("/delivery")].kill()  # mid-stream
            killed_at = time.time()
            await asyncio.wait_for(asyncio.gather(*sending), 180)
            acked = {control_id for sender in senders for control_id in sender.acked}
            assert len(acked) == MESSAGES
            await eventually(_all_of(acked, downstream), timeout_s=120)
            taker = await holder_of(postgres_url, DELIVERY_LEASE)
        finally:
            for engine in engines:
                engine.kill()
    assert taker not in ("", deliverer)
    received = downstream.control_ids
    for sender in senders:
        mine = [c for c in dict.fromkeys(received) if c.startswith(f"S{sender.number}-")]
        assert mine == sorted(mine) == sender.acked  # every one, in the order sent
    duplicates = sum(count - 1 for count in Counter(received).values())
    record_property("duplicates_delivered", duplicates)
    record_property("senders_moved", sum(sender.moves for sender in senders))
    print(  # the report of this run (pytest -s shows it)
        f"\n{MESSAGES} messages, deliverer killed at {killed_at:.3f}: "
        f"{len(received)} deliveries, {duplicates} duplicate(s) (at-least-once), "
        f"{sum(sender.moves for sender in senders)} sender move(s)"
    )
    assert any(sender.moves for sender in senders)  # the killed engine's senders moved


def _all_of(acked: set[str], downstream: Receiver) -> Callable[[], Awaitable[bool]]:
    async def arrived() -> bool:
        return acked <= set(downstream.control_ids)

    return arrived


def _count_reached(arrivals: list[tuple[int, str]], count: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return len({control_id for _, control_id in arrivals}) >= count

    return reached


@contextlib.asynccontextmanager
async def engine_in_process(config: Path) -> AsyncIterator[Engine]:
    engine = Engine(load_config(config), acks=fixed_acks())
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def test_an_engine_cut_off_from_the_database_stops_delivering_before_another_takes_over(
    tmp_path: Path, postgres_url: str
) -> None:
    arrivals: list[tuple[int, str]] = []  # (connection, control id), in arrival order

    def slow_receiver(received: Received) -> Reply:
        arrivals.append((received.connection, received.control_id))
        return Reply(ack(received).payload, delay_s=0.02)

    async def send_all(address: tuple[str, int]) -> None:
        """As a sender does: an AE ("not stored, resend") is answered by resending. While the
        cut-off engine's frozen transaction holds a lock the other's commit waits on, its
        intake may answer AE once its store timeout has passed."""
        client = await MllpClient.connect(*address)
        for n in range(300):
            for _ in range(20):  # bounded: the lock goes with the frozen session
                if b"MSA|AA|" in await client.exchange(adt(f"C{n:03d}"), 30):
                    break
            else:
                raise AssertionError(f"C{n:03d} never acknowledged AA")
        await client.close()

    parts = conninfo_to_dict(postgres_url)
    async with (
        Receiver(slow_receiver) as downstream,
        TcpProxy(str(parts["host"]), int(parts["port"])) as proxy,
    ):
        through_proxy = postgres_url.replace(f":{parts['port']}/", f":{proxy.port}/")
        # In-process engines that deliver themselves: the test holds their lease keepers.
        cut_off_config = engine_config(tmp_path, "cut", through_proxy, downstream.address, 1)
        direct_config = engine_config(tmp_path, "direct", postgres_url, downstream.address, 1)
        cut_off = Engine(load_config(cut_off_config), acks=fixed_acks())
        await cut_off.start()
        try:
            assert cut_off.leases is not None
            await cut_off.leases.acquire(DELIVERY_LEASE)  # the first engine delivers
            async with engine_in_process(direct_config) as direct:
                sending = asyncio.create_task(send_all(direct.listeners["adt"].address))
                await downstream.wait_for(40)  # mid-stream: most messages still to deliver
                proxy.freeze()  # the first engine's database goes away, silently
                await sending
                await eventually(_count_reached(arrivals, 300), timeout_s=60)
                assert direct.leases is not None
                taken = await direct.leases.acquire(DELIVERY_LEASE)
                direct_holder = direct.leases.engine.engine_id
        finally:
            await proxy.cut()  # lets the cut-off engine stop: its store fails at once
            await cut_off.stop()
    before = [n for n, (connection, _) in enumerate(arrivals) if connection == 1]
    after = [n for n, (connection, _) in enumerate(arrivals) if connection > 1]
    assert before and after
    # One deliverer at a time: the cut-off engine's last message arrived before the other
    # engine's first (which delivers only once it took the lease).
    assert max(before) < min(after)
    assert taken.lease.holder == direct_holder
    # Whether the cut-off engine sends one more message after the freeze depends on where
    # its send was when the database froze (and on how soon its lease ran out under load):
    # not asserted, as it failed once in seven runs on a loaded machine.
    ids = [control_id for _, control_id in arrivals]
    assert list(dict.fromkeys(ids)) == [f"C{n:03d}" for n in range(300)]
