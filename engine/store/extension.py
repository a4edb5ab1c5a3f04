"""How a step kind keeps tables of its own in the engine's store, whatever the backend.

The core store knows messages, outbox entries and the generic decision of every step. A step
kind that needs more (INS enrichment keeps identity outcomes and an INSi result cache)
declares a `StoreExtension`: for each SQL dialect it supports, the statements that create
its tables, record its decisions' payloads and prune expired rows. The backend runs them:

- `schema` when the store opens (idempotent: `CREATE ... IF NOT EXISTS`);
- `record` inside the very transaction that stores a decision of the extension's kind, with
  the parameters `row()` gives, so a window's routing stays all or none;
- `prune` with (now, limit) during retention, until it deletes fewer than `limit` rows;
- `legacy_decisions` once, when a store written before decisions had their own table is
  migrated, to copy what the extension kept into that table;
- `copied`: the tables `ins-engine store copy` carries from one store to another, each with
  its columns (the first one the key rows are read in the order of).

Outside routing, an extension reads and writes its tables through the store's `fetch` and
`execute`, with statements written for `store.dialect`. A backend refuses to open when an
extension has no statements for its dialect. Extension tables may reference
`messages (id) ON DELETE CASCADE`, so that retention removes them with their message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from engine.errors import StoreError
from engine.store.decision import Decision


@dataclass(frozen=True)
class ExtensionSql:
    """One dialect's statements of an extension (see the module docstring)."""

    schema: str
    record: str | None = None
    prune: str | None = None
    legacy_decisions: str | None = None
    copied: tuple[tuple[str, tuple[str, ...]], ...] = ()


class StoreExtension(Protocol):
    """A step kind's tables: its statements per dialect and the rows of its decisions."""

    @property
    def kind(self) -> str:
        """The step kind whose decisions `record` keeps."""
        ...

    def sql(self, dialect: str) -> ExtensionSql | None:
        """The statements for `dialect` (`sqlite`, `postgresql`), or None if unsupported."""
        ...

    def row(self, message_id: int, recorded_at: float, decision: Decision) -> Sequence[Any] | None:
        """The parameters of `record` for one decision of this kind, or None to keep nothing."""
        ...


def dialect_sql(extension: StoreExtension, dialect: str) -> ExtensionSql:
    """An extension's statements for a backend's dialect; a store cannot open without them."""
    sql = extension.sql(dialect)
    if sql is None:
        backend = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(dialect, dialect)
        raise StoreError(f"step kind {extension.kind} keeps no tables in a {backend} store")
    return sql
