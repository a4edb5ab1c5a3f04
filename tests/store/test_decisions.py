"""Step decisions and store extensions, on both backends: an extension's rows are written
in the transaction that routes their message, so a window is routed all or none."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from engine.errors import StoreError
from engine.store.backends import open_store
from engine.store.base import NewEntry, RoutingResult
from engine.store.decision import Decision
from engine.store.extension import ExtensionSql
from tests.delivery.harness import store_messages
from tests.support.messages import adt


class Notes:
    """A tiny extension: one row per decision of kind `note`, refused when it says `boom`."""

    kind = "note"

    def sql(self, dialect: str) -> ExtensionSql | None:
        mark = {"sqlite": "?", "postgresql": "%s"}.get(dialect)
        if mark is None:
            return None
        return ExtensionSql(
            schema="""CREATE TABLE IF NOT EXISTS notes (
                message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                text TEXT NOT NULL CHECK (text != 'boom'))""",
            record=f"INSERT INTO notes (message_id, text) VALUES ({mark}, {mark})",  # noqa: S608
        )

    def row(self, message_id: int, recorded_at: float, decision: Decision) -> Sequence[Any]:
        return (message_id, decision.payload)


async def test_extension_rows_are_written_with_their_routing_all_or_none(store_url: str) -> None:
    store = await open_store(store_url, extensions=[Notes()])
    try:
        await store_messages(store, "adt", [adt("N1"), adt("N2"), adt("N3")])

        def routed(message_id: int, note: str) -> RoutingResult:
            decision = Decision("n", "note", "noted", payload=note)
            return RoutingResult(message_id, [NewEntry("d", None, None)], [decision])

        await store.route_messages([routed(1, "first")])
        with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):  # N3's is refused:
            await store.route_messages([routed(2, "second"), routed(3, "boom")])  # N2 waits too
        assert await store.fetch("SELECT message_id, text FROM notes") == [(1, "first")]
        assert await store.fetch("SELECT message_id FROM outbox") == [(1,)]
        assert await store.fetch("SELECT message_id FROM step_decisions") == [(1,)]
        assert [m.control_id for m in await store.received(0, 10)] == ["N2", "N3"]
    finally:
        await store.close()


async def test_a_store_refuses_an_extension_without_statements_for_it(store_url: str) -> None:
    class Unsupported(Notes):
        def sql(self, dialect: str) -> ExtensionSql | None:
            return None

    backend = "PostgreSQL" if store_url.startswith("postgresql") else "SQLite"
    with pytest.raises(StoreError, match=f"step kind note keeps no tables in a {backend} store"):
        await open_store(store_url, extensions=[Unsupported()])
