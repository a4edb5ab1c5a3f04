"""What the delivery tests share: a store filled the way the engine fills it (stored by
`accept`, routed by the real `Router`), the delivery service running on it, and a bounded
wait for a condition."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

from engine.config.settings import RouteSettings
from engine.delivery.service import DeliveryService
from engine.routing.route import RoutePlan
from engine.routing.router import Router
from engine.store.base import EntryStatus, EntrySummary, Incoming
from engine.store.sqlite import SqliteStore
from engine.testing.receiver import Receiver


async def store_messages(store: SqliteStore, route: str, payloads: list[bytes]) -> None:
    """Commit messages to the inbox in the given order, as the listener's intake does."""
    counter = itertools.count()
    for start in range(0, len(payloads), 500):
        await asyncio.gather(
            *(
                store.accept(_incoming(route, payload, next(counter)))
                for payload in payloads[start : start + 500]
            )
        )


async def route_all(store: SqliteStore, routes: list[RouteSettings]) -> None:
    """Route everything in the inbox with the engine's router (no route steps)."""
    router = Router(store, {route.name: RoutePlan(route) for route in routes}, window=500)
    while await router.route_pending():
        pass


def _incoming(route: str, payload: bytes, number: int) -> Incoming:
    fields = payload.split(b"|")
    control_id = fields[9].decode()
    return Incoming(
        route=route,
        peer="127.0.0.1:1",
        received_at=1_700_000_000.0 + number,
        sending_application="PAS",
        sending_facility="HOSP",
        control_id=control_id,
        message_type="^".join(fields[8].decode().split("^")[:2]),
        content_hash=hashlib.sha256(payload).digest(),
        raw=payload,
        ack=b"",
    )


@contextlib.asynccontextmanager
async def delivering(store: SqliteStore, *routes: RouteSettings) -> AsyncIterator[DeliveryService]:
    """The engine's delivery service running on `store` for `routes`."""
    service = DeliveryService(store, list(routes), retention_days=30.0)
    await service.start()
    try:
        yield service
    finally:
        await service.stop(5.0)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Poll `condition` until it holds; fail after `timeout_s` (a hang guard, not a speed
    assertion)."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110 - the store offers no event
            await asyncio.sleep(0.02)


async def entries(store: SqliteStore, status: EntryStatus) -> list[EntrySummary]:
    return await store.list_entries(status, None, None, 100_000)


def arrived(downstream: Receiver, expected: list[str]) -> Callable[[], Awaitable[bool]]:
    """A condition for `eventually`: every expected control id has reached `downstream`."""

    async def condition() -> bool:
        return set(downstream.control_ids) >= set(expected)

    return condition


def assert_in_order_but_one_resend(received: list[str], expected: list[str]) -> None:
    """Every expected message arrived, first arrivals in order; at most one step back (the
    send in flight at a crash, sent again: at-least-once)."""
    assert list(dict.fromkeys(received)) == expected
    back = [i for i in range(1, len(received)) if received[i] <= received[i - 1]]
    assert len(back) <= 1
