"""The identity work list: the outcomes needing a person, and the vigilance team's marks.

A person marks an identity "handled" with a comment once it is dealt with in the patient
record (searched again, document checked, INS attached by hand...); the mark is kept in the
enrichment step's tables (`identity_reviews`) and removed with its message by retention.
Rows hold patient identity: they are shown to the vigilance role only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from engine.enrich.store import IdentityRecord
from engine.errors import StoreError
from engine.store.base import Store

_SQLITE_LIST = """
SELECT i.message_id, m.received_at, m.route, m.control_id, m.message_type, i.record,
       r.at, r.user, r.comment
FROM identity_outcomes i JOIN messages m ON m.id = i.message_id
LEFT JOIN identity_reviews r ON r.message_id = i.message_id
WHERE json_extract(i.record, '$.outcome') IN (SELECT value FROM json_each(:wanted))
  AND (:handled IS NULL OR (r.message_id IS NOT NULL) = :handled)
  AND (:before IS NULL OR i.message_id < :before)
ORDER BY i.message_id DESC LIMIT :limit
"""
_SQLITE_MARK = """
INSERT INTO identity_reviews (message_id, at, user, comment)
SELECT message_id, ?, ?, ? FROM identity_outcomes WHERE message_id = ?
ON CONFLICT (message_id) DO UPDATE SET at = excluded.at, user = excluded.user,
    comment = excluded.comment
"""


@dataclass(frozen=True, slots=True)
class Review:
    at: float
    user: str
    comment: str


@dataclass(frozen=True, slots=True)
class WorkItem:
    """An identity needing a person, and whether one has handled it."""

    identity: IdentityRecord
    review: Review | None = field(default=None)


async def work_list(
    store: Store,
    outcomes: frozenset[str],
    handled: bool | None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[WorkItem]:
    """Newest first; `handled` None for both, False for those still to handle."""
    _require_sqlite(store)
    rows = await store.fetch(
        _SQLITE_LIST,
        {
            "wanted": json.dumps(sorted(outcomes)),
            "handled": handled,
            "before": before_id,
            "limit": limit,
        },
    )
    return [_item(row) for row in rows]


async def mark_handled(store: Store, message_id: int, user: str, comment: str) -> bool:
    """Mark (or mark again) one identity handled; False when the message has no outcome."""
    _require_sqlite(store)
    return await store.execute(_SQLITE_MARK, (time.time(), user, comment, message_id)) == 1


def _item(row: tuple[Any, ...]) -> WorkItem:
    message_id, received_at, route, control_id, message_type, record, at, user, comment = row
    identity = IdentityRecord(
        message_id, received_at, route, control_id, message_type, json.loads(record)
    )
    return WorkItem(identity, Review(at, user, comment) if at is not None else None)


def _require_sqlite(store: Store) -> None:
    if store.dialect != "sqlite":
        raise StoreError(f"the identity work list has no {store.dialect} statements")
