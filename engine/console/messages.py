"""The message list and one message's journey, for every role, without patient data; its
content (received and delivered bytes side by side) for the vigilance role only, audited.

The list is a search (`engine.tools.message_search`): control id (prefix), local patient
identifier, sender, type, route, destination and its state, a step's outcome (offered with
its meaning, as the installed kinds declare it), reception time; newest first, page by page
(keyset: messages stored meanwhile never shift a page), exported as CSV. Searching by
patient name or birth date is for the vigilance role only, each search audited.

A message's page shows what happened to it in order: received
(when, from which peer, which type), the ACK sent, what each step decided (flagging the
outcomes the kinds say ask a person to act), then each destination's delivery (each attempt
with its ACK code or error, operators' actions).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from urllib.parse import urlencode

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
from engine.store.base import EntryStatus, MessageDetail, TraceEvent
from engine.tools.message_search import (
    EXPORT_COLUMNS,
    FILTERS,
    MAX_TEXT,
    Search,
    SearchError,
    every_match,
    export_row,
    outcome_meanings,
)
from engine.tools.replay.acks import AckFormatError, read_ack
from engine.tools.spreadsheet import csv_bytes

MAX_REASON = 300
PAGE_SIZES = ("50", "20", "100", "200")  # rows a page, the first by default


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


async def _search(request: web.Request, target: str) -> Search:
    """The search the query string asks for: 400 when a filter cannot be read, 403 for a
    search by patient name or birth date below the vigilance role; that search is audited
    before anything is found."""
    for name in FILTERS:
        text_field(request.query.get(name), MAX_TEXT)  # control characters: 400
    search = Search.of(request.query)
    try:
        search.query()
    except SearchError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    if search.by_traits:
        if request[SESSION].role < Role.VIGILANCE:
            raise web.HTTPForbidden(
                text="searching by patient name or birth date needs the vigilance role"
            )
        await audit(request, "search_patients", target, search.traits)
    return search


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
    search = await _search(request, "message list")
    size = request.query.get("size", "")
    size = size if size in PAGE_SIZES else PAGE_SIZES[0]
    found = await engine.store.find_messages(search.query(cursor(request), int(size)))
    shown = {name: value for name, value in search.values.items() if value}
    if size != PAGE_SIZES[0]:
        shown["size"] = size
    return render(
        request,
        "messages.html",
        search=search,
        messages=found,
        acks={message.message_id: ack_code(message.ack) for message in found},
        routes=[route.name for route in engine.config.routes],
        destinations=sorted(
            {
                destination.name
                for route in engine.config.routes
                for destination in route.destinations
            }
        ),
        statuses=[status.value for status in EntryStatus],
        outcomes=outcome_meanings(),  # the filter's choices, each with its meaning
        traits=request[SESSION].role >= Role.VIGILANCE,
        query=urlencode(shown),
        sizes=PAGE_SIZES,
        size=size,
        next_before=found[-1].message_id if len(found) == int(size) else None,
        paged=cursor(request) is not None,
    )


async def message_export(request: web.Request) -> web.Response:
    """The messages a search finds as CSV (metadata only, for every role)."""
    engine = engine_of(request)
    search = await _search(request, "message export")
    rows = [export_row(summary) async for summary in every_match(engine.store, search)]
    name = f"messages-{dt.date.today().isoformat()}.csv"
    return web.Response(
        body=csv_bytes(rows, EXPORT_COLUMNS),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
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
    app.router.add_get("/messages.csv", message_export)
    app.router.add_get(r"/messages/{message_id:\d+}", message_page)
    app.router.add_get(r"/messages/{message_id:\d+}/content", message_content)
    app.router.add_post(r"/messages/{message_id:\d+}/reprocess", reprocess)
