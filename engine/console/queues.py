"""Queues: what waits for each destination, and the operator's actions on it.

Viewers see every destination's pending and parked entries (ids, control ids, types, times,
attempts, the engine's own error texts; never message content). Operators may resend a
parked, skipped or delivered entry (a copy goes to the tail of its queue), skip a pending or
parked one with a reason, or resend every parked entry of a destination at once. Each
action is audited with who did it and why. With engines sharing the store, the page also
shows every engine and which one delivers each destination, since when.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from aiohttp import web

from engine.console.context import audit
from engine.console.guard import needs
from engine.console.login import redirect
from engine.console.render import SESSION, render
from engine.console.users import Role
from engine.delivery.service import queue_holder
from engine.http.params import local_target, path_id, text_field
from engine.http.view import engine_of
from engine.store.base import ActionResult, EntryStatus

LISTED = 100
MAX_REASON = 300


async def queues(request: web.Request) -> web.Response:
    engine = engine_of(request)
    store = engine.store
    status = {(row.route, row.destination): row for row in await store.queue_status()}
    leases = await store.leases()
    now = time.time()
    sections = []
    for route, destination in engine.destinations():
        holder, since = queue_holder(leases, route, destination, now)
        sections.append(
            {
                "route": route,
                "name": destination,
                "holder": holder,
                "since": since,
                "status": status.get((route, destination)),
                "parked": await store.list_entries(EntryStatus.PARKED, route, destination, LISTED),
                "pending": await store.list_entries(
                    EntryStatus.PENDING, route, destination, LISTED
                ),
            }
        )
    return render(
        request,
        "queues.html",
        sections=sections,
        listed=LISTED,
        engines=await store.engines(),
        leases=leases,
        now=now,
    )


def _reason(form: Mapping[str, object], default: str = "") -> str:
    return text_field(form.get("reason"), MAX_REASON) or default


def _notice(results: list[ActionResult]) -> str:
    return "; ".join(f"entry {result.entry_id}: {result.detail}" for result in results)


async def _done(
    request: web.Request, results: list[ActionResult], form: Mapping[str, object]
) -> web.Response:
    """Back to the page the action came from (the queues, or a message's page)."""
    engine_of(request).requeued()
    request[SESSION].notice = _notice(results) or "nothing to do"
    return redirect(local_target(str(form.get("back", "")), "/queues"))


@needs(Role.OPERATOR)
async def resend(request: web.Request) -> web.Response:
    entry_id = path_id(request, "entry_id")
    form = await request.post()
    reason = _reason(form, "resent from the console")
    results = await engine_of(request).store.resend([entry_id], reason)
    await audit(request, "resend", f"entry {entry_id}", f"{reason} ({_notice(results)})")
    return await _done(request, results, form)


@needs(Role.OPERATOR)
async def skip(request: web.Request) -> web.Response:
    entry_id = path_id(request, "entry_id")
    form = await request.post()
    reason = _reason(form)
    if not reason:
        raise web.HTTPBadRequest(text="a reason is required to skip a message")
    results = await engine_of(request).store.skip([entry_id], reason)
    await audit(request, "skip", f"entry {entry_id}", f"{reason} ({_notice(results)})")
    return await _done(request, results, form)


@needs(Role.OPERATOR)
async def resend_parked(request: web.Request) -> web.Response:
    """Every parked entry of one destination, oldest first, each to the tail of its queue."""
    route, destination = request.match_info["route"], request.match_info["destination"]
    engine = engine_of(request)
    if (route, destination) not in engine.destinations():
        raise web.HTTPNotFound(text="no such destination")
    reason = _reason(await request.post(), "parked messages resent from the console")
    parked = await engine.store.entry_ids(EntryStatus.PARKED, route, destination)
    results = await engine.store.resend(parked, reason) if parked else []
    resent = sum(result.done for result in results)
    await audit(request, "resend_parked", f"{route}/{destination}", f"{reason} ({resent} resent)")
    engine.requeued()
    request[SESSION].notice = f"{resent} parked message(s) of {route}/{destination} resent"
    return redirect("/queues")


def register(app: web.Application) -> None:
    app.router.add_get("/queues", queues)
    app.router.add_post(r"/queues/entries/{entry_id:\d+}/resend", resend)
    app.router.add_post(r"/queues/entries/{entry_id:\d+}/skip", skip)
    app.router.add_post("/queues/{route}/{destination}/resend-parked", resend_parked)
