"""A message search as a person types it, on the console's form or the command line: the
filters by name, their text read into a store query (with an answer that says what to type
when it cannot be read), and the rows of its CSV export.

The export holds what every role may see: ids, times, type, route, each destination's state
and the steps' outcomes, never patient data. Searching by patient name or birth date is
patient data: the console allows it to the vigilance role only, and audits it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from engine.errors import EngineError
from engine.steps.registry import registry
from engine.store.base import EntryStatus, MessageQuery, MessageSummary
from engine.store.roles import ConsoleQueries

MAX_TEXT = 64  # characters of a filter
EXPORT_LIMIT = 100_000  # rows of one CSV export
EXPORT_PAGE = 1_000
EXPORT_COLUMNS = (
    "message_id",
    "received_at",
    "control_id",
    "message_type",
    "route",
    "deliveries",
    "outcomes",
)

# Filter name -> the store query's field; `since`, `until` and `status` are read apart.
TEXT_FILTERS = {
    "control_id": "control_id",
    "patient_id": "patient_id",
    "application": "sending_application",
    "facility": "sending_facility",
    "type": "message_type",
    "route": "route",
    "destination": "destination",
    "outcome": "outcome",
    "name": "patient_name",
}
TRAIT_FILTERS = ("name", "birth_date")  # patient data: the vigilance role only
FILTERS = (*TEXT_FILTERS, "status", "since", "until", "birth_date")
_STATUSES = {status.value: status for status in EntryStatus}


class SearchError(EngineError):
    """A filter that cannot be read; the text says what to type instead."""


@dataclass(frozen=True)
class Search:
    """The filters as typed (trimmed), by name; an empty one is not applied."""

    values: Mapping[str, str]

    @classmethod
    def of(cls, typed: Mapping[str, str | None]) -> Search:
        return cls({name: (typed.get(name) or "").strip()[:MAX_TEXT] for name in FILTERS})

    def __getitem__(self, name: str) -> str:
        return self.values.get(name, "")

    @property
    def by_traits(self) -> bool:
        """Whether it searches by patient data (name, birth date)."""
        return any(self[name] for name in TRAIT_FILTERS)

    @property
    def traits(self) -> str:
        """The patient data searched for, as the audit keeps it."""
        return ", ".join(f"{name} {self[name]}" for name in TRAIT_FILTERS if self[name])

    def query(self, before_id: int | None = None, limit: int = 50) -> MessageQuery:
        """The store query; raises `SearchError` for a date or state it cannot read."""
        fields: dict[str, object] = {
            field: self[name] for name, field in TEXT_FILTERS.items() if self[name]
        }
        status = self["status"]
        if status and status not in _STATUSES:
            raise SearchError(f"status: one of {', '.join(_STATUSES)}")
        return MessageQuery(
            **fields,  # type: ignore[arg-type]
            status=_STATUSES.get(status),
            since=moment(self["since"], "since"),
            until=moment(self["until"], "until"),
            birth_date=birth_date(self["birth_date"]),
            before_id=before_id,
            limit=limit,
        )


def outcome_meanings() -> dict[str, str]:
    """The outcomes the installed kinds declare, each with what it means (the filter's
    choices)."""
    kinds = registry()
    meanings = kinds.meanings()
    return {outcome: meanings.get(outcome, "") for outcome in kinds.outcomes()}


def moment(text: str, name: str) -> float | None:
    """A date (`2024-01-31`) or a local date and time (`2024-01-31T08:00`) as epoch seconds."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text).astimezone().timestamp()
    except ValueError:
        raise SearchError(f"{name}: a date such as 2024-01-31 or 2024-01-31T08:00") from None


def birth_date(text: str) -> str | None:
    """A birth date as PID-7 writes it (YYYYMMDD), from `1980-01-31` or `19800131`."""
    if not text:
        return None
    digits = text.replace("-", "")
    try:
        dt.datetime.strptime(digits, "%Y%m%d")
    except ValueError:
        raise SearchError("birth date: a date such as 1980-01-31") from None
    return digits


async def every_match(store: ConsoleQueries, search: Search) -> AsyncIterator[MessageSummary]:
    """The messages a search finds, newest first, up to `EXPORT_LIMIT`, page by page."""
    before, count = None, 0
    while count < EXPORT_LIMIT:
        page = await store.find_messages(
            search.query(before, min(EXPORT_PAGE, EXPORT_LIMIT - count))
        )
        for summary in page:
            yield summary
        count += len(page)
        if len(page) < EXPORT_PAGE:
            return
        before = page[-1].message_id


def export_row(summary: MessageSummary) -> dict[str, object]:
    """A found message as a row of the CSV export: metadata only."""
    received = dt.datetime.fromtimestamp(summary.received_at).astimezone()
    return {
        "message_id": summary.message_id,
        "received_at": received.isoformat(timespec="seconds"),
        "control_id": summary.control_id,
        "message_type": summary.message_type,
        "route": summary.route,
        "deliveries": " ".join(f"{name}={state.value}" for name, state in summary.deliveries),
        "outcomes": " ".join(summary.outcomes),
    }
