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
from dataclasses import dataclass, replace

from aiohttp import web

from engine.console.content import compare, readable
from engine.console.context import audit
from engine.console.guard import needs
from engine.console.login import redirect
from engine.console.render import SESSION, render
from engine.console.users import Role
from engine.http.params import cursor, path_id, text_field
from engine.http.view import EngineView, engine_of
from engine.steps.registry import registry
from engine.store.base import EntryStatus, MessageDetail, MessageQuery, TraceEvent
from engine.tools.replay.acks import AckFormatError, read_ack

PAGE = 50
MAX_REASON = 300
_STATUSES = frozenset(status.value for status in EntryStatus)


@dataclass(frozen=True)
class Line:
    """A line of a delivery's history: one event, or a run of failed attempts that ended
    alike, folded (a parked message's page would otherwise list every retry)."""

    event: TraceEvent
    count: int = 1
    last_at: float = 0.0


def folded(events: list[TraceEvent]) -> list[Line]:
    """Consecutive failed attempts with the same error as one line, with their count."""
    lines: list[Line] = []
    for event in events:
        previous = lines[-1] if lines else None
        if (
            previous is not None
            and event.kind in ("failed", "parked")
            and previous.event.kind == "failed"
            and previous.event.detail == event.detail
        ):
            lines[-1] = Line(replace(previous.event, kind=event.kind), previous.count + 1, event.at)
        else:
            lines.append(Line(event, 1, event.at))
    return lines


def line_text(line: Line) -> str:
    if line.count == 1:
        return event_text(line.event)
    parked = ", parked" if line.event.kind == "parked" else ""
    return f"{line.count} failed attempts{parked}: {line.event.detail}"


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
    route = next((r for r in engine.config.routes if r.name == detail.summary.route), None)
    return render(
        request,
        "message.html",
        message=detail,
        ack=ack_code(detail.summary.ack),
        decisions=await engine.store.decisions(detail.summary.message_id),
        attention=registry().attention(),
        meanings=registry().meanings(),
        lines={trace.entry_id: folded(trace.events) for trace in detail.traces},
        line_text=line_text,
        destinations=[d.name for d in route.destinations] if route else [],
        took={entry.destination for entry in detail.entries},
    )


@needs(Role.OPERATOR)
async def reprocess(request: web.Request) -> web.Response:
    """Run the message again through its route's current steps, to the destinations ticked."""
    engine, detail = await _detail(request)
    form = await request.post()
    reason = text_field(form.get("reason"), MAX_REASON)
    if not reason:
        raise web.HTTPBadRequest(text="a reason is required to reprocess a message")
    route = next((r for r in engine.config.routes if r.name == detail.summary.route), None)
    known = {d.name for d in route.destinations} if route else set()
    chosen = [text_field(value, 64) for value in form.getall("to", [])]
    if not chosen or not set(chosen) <= known:
        raise web.HTTPBadRequest(text="tick one or more of the route's destinations")
    user = request[SESSION].user
    (result,) = await engine.store.reprocess([detail.summary.message_id], chosen, user, reason)
    request[SESSION].notice = f"message {result.message_id}: {result.detail}"
    if result.copy_id is None:
        return redirect(f"/messages/{detail.summary.message_id}")
    return redirect(f"/messages/{result.copy_id}")


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
    app.router.add_post(r"/messages/{message_id:\d+}/reprocess", reprocess)
