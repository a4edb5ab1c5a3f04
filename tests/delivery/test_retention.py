"""Retention pruning on a real SQLite file: finished entries and messages older than the
cutoff go (their decisions and identity outcomes with them), open ones stay, and the newest
row always stays so that no id is ever handed out again behind a cursor."""

from __future__ import annotations

import sqlite3
import time

from engine.delivery.retention import DAY_S, Retention
from engine.enrich.store import StoredResultCache
from engine.store.base import NewEntry, Pruned, RoutingResult
from engine.store.decision import Decision
from engine.store.sqlite import SqliteStore
from tests.delivery.harness import store_messages
from tests.support.messages import adt


async def seeded(store: SqliteStore, count: int) -> None:
    await store_messages(store, "adt", [adt(f"R{n}") for n in range(1, count + 1)])
    for message_id in range(1, count + 1):
        entries = [NewEntry("down", None, "P1")]
        decision = Decision("ins", "ins_enrich", "added", payload={"outcome": "added"})
        await store.route_messages([RoutingResult(message_id, entries, [decision])])


def rows(store: SqliteStore, table: str) -> list[int]:
    with sqlite3.connect(store.path) as connection:
        key = "id" if table in ("outbox", "messages") else "message_id"
        return [row[0] for row in connection.execute(f"SELECT {key} FROM {table} ORDER BY 1")]  # noqa: S608


def retention(store: SqliteStore, days_from_now: float) -> Retention:
    """Retention of 30 days, as it runs `days_from_now` days from now."""
    return Retention(store, 30, clock=lambda: time.time() + days_from_now * DAY_S)


async def test_finished_and_old_is_pruned_open_and_newest_are_kept(store: SqliteStore) -> None:
    await seeded(store, 5)
    for entry_id in (1, 2, 5):
        await store.mark_delivered(entry_id, "AA")
    await store.skip([3], "not wanted")
    await store.record_failure(4, "AR", 0.0, park=True)
    # Messages received long ago, but finished just now: nothing is past the cutoff yet.
    assert await retention(store, 0).prune_once() == Pruned(0, 0)
    assert await retention(store, 31).prune_once() == Pruned(3, 3)
    assert rows(store, "outbox") == [4, 5]  # parked 4 stays; 5 is the newest row
    assert rows(store, "messages") == [4, 5]
    assert rows(store, "identity_outcomes") == [4, 5]
    assert rows(store, "step_decisions") == [4, 5]


async def test_expired_insi_results_are_pruned_live_ones_kept(store: SqliteStore) -> None:
    now = time.time()
    cache = StoredResultCache(store)
    await cache.save("expired", b"{}", now - 1)
    await cache.save("live", b"{}", now + 3600)
    assert (await retention(store, 0).prune_once()).extension_rows == 1
    assert await cache.load("expired") is None
    assert await cache.load("live") == b"{}"


async def test_dropped_messages_are_pruned_with_their_decisions(store: SqliteStore) -> None:
    await store_messages(store, "adt", [adt("D1")])
    await store.route_messages(
        [RoutingResult(1, [], [Decision("f", "filter", "dropped", "200 MSH^1^9")], dropped=True)]
    )
    await store_messages(store, "adt", [adt("LAST")])  # the newest row always stays
    assert await retention(store, 31).prune_once() == Pruned(0, 1)
    assert rows(store, "messages") == [2]
    assert rows(store, "step_decisions") == []
