"""The message list and one message's journey, for every role, without patient data; its
content (received and delivered bytes side by side) for the vigilance role only, audited.

The list filters by control id, route, reception date, a step's outcome (an enrichment
outcome, `dropped`...) and the state of the message's deliveries; it offers the outcomes the
installed kinds declare. A message's page shows what happened to it in order: received
(when, from which peer, which type), the ACK sent, what each step decided (flagging the
outcomes the kinds say ask a person to act), then each destination's delivery (each attempt
with its ACK code or error, operators' actions).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from aiohttp import web

from engine.console.content import compare, readable
from engine.console.context import audit
from engine.console.guard import needs
from engine.console.render import render
from engine.console.users import Role
from engine.http.params import cursor, path_id, text_field
from engine.http.view import EngineView, engine_of
from engine.steps.registry import registry
from engine.store.base import EntryStatus, MessageDetail, MessageQuery, TraceEvent
from engine.tools.replay.acks import AckFormatError, read_ack

PAGE = 50
_STATUSES = frozenset(status.value for status in EntryStatus)


def event_text(event: TraceEvent) -> str:
    """One line of a delivery's history: an attempt's result or an operator's action."""
    if event.kind == "delivered":
        return f"delivered, ACK {event.detail}" if event.detail else "delivered"
    if event.kind in ("failed", "parked"):
        parked = ", parked" if event.kind == "parked" else ""
        return f"attempt failed{parked}: {event.detail}"
    return f"operator: {event.kind} — {event.detail}"


@dataclass(frozen=True)
class Filters:
    control_id: str
    route: str
    since: str  # the form's values, as typed
    until: str
    status: str
    outcome: str

    @classmethod
    def of(cls, request: web.Request) -> Filters:
        query = request.query
        return cls(
            *(
                text_field(query.get(key), 64)
                for key in ("control_id", "route", "since", "until", "status", "outcome")
            )
        )

    def query(self, before_id: int | None) -> MessageQuery:
        return MessageQuery(
            control_id=self.control_id or None,
            route=self.route or None,
            since=_moment(self.since, "since"),
            until=_moment(self.until, "until"),
            status=EntryStatus(self.status) if self.status in _STATUSES else None,
            outcome=self.outcome or None,
            before_id=before_id,
            limit=PAGE,
        )


def _moment(text: str, name: str) -> float | None:
    """A date (`2024-01-31`) or a local date and time from the form, as epoch seconds."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text).astimezone().timestamp()
    except ValueError:
        raise web.HTTPBadRequest(
            text=f"{name}: a date such as 2024-01-31 or 2024-01-31T08:00"
        ) from None


def ack_code(ack: bytes) -> str:
    """MSA-1 of a stored ACK ('' when none was sent: MLLP commit ACKs, MSH-15 NE)."""
    if not ack:
        return ""
    try:
        return read_ack(ack).code.value
    except AckFormatError:
        return "?"


async def message_list(request: web.Request) -> web.Response:
    engine = engine_of(request)
    filters = Filters.of(request)
    found = await engine.store.find_messages(filters.query(cursor(request)))
    return render(
        request,
        "messages.html",
        filters=filters,
        messages=found,
        acks={message.message_id: ack_code(message.ack) for message in found},
        routes=[route.name for route in engine.config.routes],
        statuses=[status.value for status in EntryStatus],
        outcomes=registry().outcomes(),  # the filter's choices
        next_before=found[-1].message_id if len(found) == PAGE else None,
    )


async def _detail(request: web.Request) -> tuple[EngineView, MessageDetail]:
    engine = engine_of(request)
    detail = await engine.store.message_detail(path_id(request, "message_id"))
    if detail is None:
        raise web.HTTPNotFound(text="no such message (it may have been pruned)")
    return engine, detail


async def message_page(request: web.Request) -> web.Response:
    engine, detail = await _detail(request)
    return render(
        request,
        "message.html",
        message=detail,
        ack=ack_code(detail.summary.ack),
        decisions=await engine.store.decisions(detail.summary.message_id),
        attention=registry().attention(),
        events={trace.entry_id: trace.events for trace in detail.traces},
        event_text=event_text,
    )


@needs(Role.VIGILANCE)
async def message_content(request: web.Request) -> web.Response:
    engine, detail = await _detail(request)
    summary = detail.summary
    await audit(request, "view_message", f"message {summary.message_id} ({summary.control_id})")
    route = next((r for r in engine.config.routes if r.name == summary.route), None)
    received = readable(detail.raw, route)
    deliveries = [
        (entry, compare(received, readable(entry.payload, route))) for entry in detail.entries
    ]
    return render(
        request,
        "message_content.html",
        message=detail,
        received=compare(received, received),
        deliveries=deliveries,
    )


def register(app: web.Application) -> None:
    app.router.add_get("/messages", message_list)
    app.router.add_get(r"/messages/{message_id:\d+}", message_page)
    app.router.add_get(r"/messages/{message_id:\d+}/content", message_content)
