"""The login brake over a real store (a SQLite file, a PostgreSQL schema): failures count
per name and client in a sliding window, a success or an unlock clears them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.console.brake import LoginBrake
from engine.store.backends import OpenStore, open_store
from engine.testing.clock import ManualClock


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[OpenStore]:
    opened = await open_store(store_url)
    yield opened
    await opened.close()


async def test_failures_brake_a_name_from_one_client_for_a_window(store: OpenStore) -> None:
    clock = ManualClock(1_000_000.0)
    brake = LoginBrake(store, max_failures=3, window_s=300, clock=clock)
    locked = []
    for _ in range(3):
        assert await brake.retry_after("Ana", "10.0.0.1") == 0
        locked.append(await brake.failed("Ana", "10.0.0.1"))
        clock.advance(10)
    assert locked == [False, False, True], "the third failure is the one that locks"
    assert await brake.retry_after("ana", "10.0.0.1") == 300 - 30, "the name, any case"
    assert await brake.retry_after("bob", "10.0.0.1") == 0, "another user at that client"
    assert await brake.retry_after("ana", "10.0.0.2") == 0, "the same user elsewhere"
    clock.advance(300 - 30)
    assert await brake.retry_after("ana", "10.0.0.1") == 0, "the oldest failure left the window"


async def test_a_success_or_an_unlock_clears_the_failures(store: OpenStore) -> None:
    brake = LoginBrake(store, max_failures=2, window_s=300, clock=ManualClock(1_000_000.0))
    for client in ("10.0.0.1", "10.0.0.2"):
        await brake.failed("ana", client)
    await brake.succeeded("ana", "10.0.0.1")
    await brake.failed("ana", "10.0.0.1")
    assert await brake.retry_after("ana", "10.0.0.1") == 0, "one failure since the success"
    assert await brake.failed("ana", "10.0.0.1"), "the second since the success locks"
    assert await brake.retry_after("ana", "10.0.0.1") == 300
    assert await store.clear_login_failures("ana") == 3, "every client's failures"
    assert await brake.retry_after("ana", "10.0.0.1") == 0
