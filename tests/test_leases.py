"""Lease keepers of several engines on one PostgreSQL store: one holder at a time, a
released lease passes at once, a dead holder's once its deadline has passed, and a holder
that cannot reach the store stops its work before anyone else can take its lease. The tests
check the order of these events, not how long they took (a hang guard bounds each wait)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from engine.coordination.leases import (
    HeldLease,
    LeaseKeeper,
    engine_identity,
    under_lease,
)
from engine.store.backends import open_store
from engine.store.postgresql import PostgresStore
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import HANG_GUARD_S

LEASE_S = 1.0


@contextlib.asynccontextmanager
async def keeper(url: str, lease_s: float = LEASE_S) -> AsyncIterator[LeaseKeeper]:
    """A lease keeper running on its own store (its own connections), told of leases given
    up as an engine's is."""
    store = await open_store(url)
    keeping = LeaseKeeper(store, lease_s, engine_identity())
    tasks = [
        asyncio.create_task(keeping.run()),
        asyncio.create_task(store.watch(lambda what: keeping.poke() if what == "lease" else None)),
    ]
    try:
        yield keeping
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await keeping.stop()
        await store.close()


async def has_claimed(url: str, keeping: LeaseKeeper) -> None:
    """Until `keeping` has had an answer to its first claims (it records its sign of life
    after each round of claims); the store offers no event."""
    engine_id = keeping.engine.engine_id
    store = await open_store(url)
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            while engine_id not in [e.engine_id for e in await store.engines()]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        await store.close()


async def acquired_within(keeping: LeaseKeeper, name: str, seconds: float) -> HeldLease:
    async with asyncio.timeout(seconds):  # a hang guard
        return await keeping.acquire(name)


async def test_one_holder_at_a_time_and_a_released_lease_passes_at_once(
    postgres_url: str,
) -> None:
    # Five-minute leases: without the store's notice of the release, the second engine
    # would claim again only 100 s later (a third of lease_s), beyond the hang guard.
    async with keeper(postgres_url, lease_s=300.0) as first, keeper(postgres_url, 300.0) as second:
        held = await acquired_within(first, "routing", HANG_GUARD_S)
        waiting = asyncio.create_task(second.acquire("routing"))
        await has_claimed(postgres_url, second)
        assert not waiting.done()  # refused: the second engine waits
        await first.stop()  # a clean stop gives the lease up
        taken = await asyncio.wait_for(waiting, HANG_GUARD_S)  # told at once, not in 100 s
        assert held.lost.is_set() and taken.lease.token > held.lease.token
        store = await open_store(postgres_url)
        try:
            (state,) = await store.leases()
            assert state.holder == second.engine.engine_id
            assert [engine.engine_id for engine in await store.engines()] == [
                second.engine.engine_id
            ]  # the stopped engine said goodbye
        finally:
            await store.close()


async def test_a_lease_given_up_passes_at_once_and_is_not_claimed_again(
    postgres_url: str,
) -> None:
    async with keeper(postgres_url, lease_s=300.0) as first, keeper(postgres_url, 300.0) as second:
        held = await acquired_within(first, "delivery adt/lab", HANG_GUARD_S)
        waiting = asyncio.create_task(second.acquire("delivery adt/lab"))
        await has_claimed(postgres_url, second)
        assert not waiting.done()
        await first.give_up("delivery adt/lab")  # a reload removed that destination
        taken = await asyncio.wait_for(waiting, HANG_GUARD_S)
        assert held.lost.is_set() and taken.lease.token > held.lease.token
        await second.give_up("delivery adt/lab")
        # Not claimed again by `second`: a third engine gets it at once, not in 300 s.
        async with keeper(postgres_url, lease_s=300.0) as third:
            again = await acquired_within(third, "delivery adt/lab", HANG_GUARD_S)
            assert again.lease.holder == third.engine.engine_id


async def test_a_dead_holder_is_replaced_within_lease_s_and_after_its_deadline(
    postgres_url: str,
) -> None:
    store = await open_store(postgres_url)
    dead = LeaseKeeper(store, LEASE_S, engine_identity())
    running = asyncio.create_task(dead.run())
    held = await acquired_within(dead, "delivery adt/down", 10)
    async with keeper(postgres_url) as survivor:
        waiting = asyncio.create_task(survivor.acquire("delivery adt/down"))
        await has_claimed(postgres_url, survivor)
        assert not waiting.done()  # refused while the holder lives
        running.cancel()  # the holder dies: no renewal, no release
        taken = await asyncio.wait_for(waiting, 10)  # a hang guard: lease_s is 1 s
        assert time.monotonic() > held.deadline  # never before the dead holder's own deadline
        assert held.lost.is_set()  # which it had noticed, and stopped its work
        assert taken.lease.holder == survivor.engine.engine_id
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await store.close()


async def test_a_holder_cut_off_from_the_store_stops_before_another_can_take_over(
    postgres_url: str,
) -> None:
    parts = conninfo_to_dict(postgres_url)
    async with TcpProxy(str(parts["host"]), int(parts["port"])) as proxy:
        through_proxy = make_conninfo(postgres_url, port=str(proxy.port))
        cut_off = await PostgresStore.open(through_proxy)
        holder = LeaseKeeper(cut_off, LEASE_S, engine_identity())
        running = asyncio.create_task(holder.run())
        events: list[str] = []

        async def work(held: HeldLease) -> None:
            try:
                await asyncio.Event().wait()  # works until the lease is lost
            finally:
                events.append("work stopped")

        under = asyncio.create_task(under_lease(holder, "routing", work))
        await acquired_within(holder, "routing", 10)
        async with keeper(postgres_url) as other:

            async def take_over() -> HeldLease:
                taken = await other.acquire("routing")
                events.append("taken over")
                return taken

            waiting = asyncio.create_task(take_over())
            await has_claimed(postgres_url, other)  # the other engine waits for the lease
            proxy.freeze()  # the network goes: claims hang, nothing fails at once
            taken = await asyncio.wait_for(waiting, 10)
            assert events == ["work stopped", "taken over"]
            assert taken.lease.holder == other.engine.engine_id
            under.cancel()
            running.cancel()
            await asyncio.gather(under, running, return_exceptions=True)
            await proxy.cut()
        with contextlib.suppress(Exception):
            await cut_off.close()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_store_for_one_engine_gives_every_lease_at_once(tmp_path, backend: str) -> None:
    """SQLite: one engine per file, so a lease a killed engine left behind is taken at once."""
    store = await open_store(f"sqlite:///{tmp_path / 'engine.db'}")
    try:
        await store.claim_lease("routing", "killed-engine", 600.0)
        keeping = LeaseKeeper(store, 10.0, engine_identity())
        running = asyncio.create_task(keeping.run())
        held = await acquired_within(keeping, "routing", 5)
        assert held.lease.holder == keeping.engine.engine_id
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await keeping.stop()
    finally:
        await store.close()
