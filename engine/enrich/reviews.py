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

from engine.enrich.store import IdentityRecord, queries_for
from engine.store.roles import ExtensionTables


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
    store: ExtensionTables,
    outcomes: frozenset[str],
    handled: bool | None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[WorkItem]:
    """Newest first; `handled` None for both, False for those still to handle."""
    rows = await store.fetch(
        queries_for(store).work_list,
        {
            "wanted": json.dumps(sorted(outcomes)),
            "handled": handled,
            "before": before_id,
            "limit": limit,
        },
    )
    return [_item(row) for row in rows]


async def mark_handled(store: ExtensionTables, message_id: int, user: str, comment: str) -> bool:
    """Mark (or mark again) one identity handled; False when the message has no outcome."""
    marked = await store.execute(queries_for(store).mark, (time.time(), user, comment, message_id))
    return marked == 1


def _item(row: tuple[Any, ...]) -> WorkItem:
    message_id, received_at, route, control_id, message_type, record, at, user, comment = row
    identity = IdentityRecord(
        message_id, received_at, route, control_id, message_type, json.loads(record)
    )
    return WorkItem(identity, Review(at, user, comment) if at is not None else None)
