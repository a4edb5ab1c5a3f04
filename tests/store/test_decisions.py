"""Step decisions and store extensions on a real SQLite file: an extension's rows are
written in the transaction that routes their message, so a window is routed all or none."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from engine.decision import Decision
from engine.errors import StoreError
from engine.store.base import NewEntry, RoutingResult
from engine.store.extension import ExtensionSql
from engine.store.sqlite import SqliteStore
from tests.delivery.harness import store_messages
from tests.support.messages import adt


class Notes:
    """A tiny extension: one row per decision of kind `note`, refused when it says `boom`."""

    kind = "note"

    def sql(self, dialect: str) -> ExtensionSql | None:
        if dialect != "sqlite":
            return None
        return ExtensionSql(
            schema="""CREATE TABLE IF NOT EXISTS notes (
                message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                text TEXT NOT NULL CHECK (text != 'boom'))""",
            record="INSERT INTO notes (message_id, text) VALUES (?, ?)",
        )

    def row(self, message_id: int, recorded_at: float, decision: Decision) -> Sequence[Any]:
        return (message_id, decision.payload)


def table(path: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return list(db.execute(sql))


async def test_extension_rows_are_written_with_their_routing_all_or_none(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"), [Notes()])
    try:
        await store_messages(store, "adt", [adt("N1"), adt("N2"), adt("N3")])

        def routed(message_id: int, note: str) -> RoutingResult:
            decision = Decision("n", "note", "noted", payload=note)
            return RoutingResult(message_id, [NewEntry("d", None, None)], [decision])

        await store.route_messages([routed(1, "first")])
        with pytest.raises(sqlite3.IntegrityError):  # N3's row is refused: N2 and N3 stay unrouted
            await store.route_messages([routed(2, "second"), routed(3, "boom")])
        assert table(store.path, "SELECT message_id, text FROM notes") == [(1, "first")]
        assert table(store.path, "SELECT message_id FROM outbox") == [(1,)]
        assert table(store.path, "SELECT message_id FROM step_decisions") == [(1,)]
        assert [m.control_id for m in await store.received(0, 10)] == ["N2", "N3"]
    finally:
        await store.close()


async def test_a_store_refuses_an_extension_without_statements_for_it(tmp_path: Path) -> None:
    class PostgresOnly(Notes):
        def sql(self, dialect: str) -> ExtensionSql | None:
            return None

    with pytest.raises(StoreError, match="step kind note keeps no tables in a SQLite store"):
        await SqliteStore.open(str(tmp_path / "engine.db"), [PostgresOnly()])
