"""The audit trail, for the vigilance role: every login, action and view of patient data."""

from __future__ import annotations

from aiohttp import web

from engine.console.guard import needs
from engine.console.render import render
from engine.console.users import Role
from engine.http.params import cursor
from engine.http.view import engine_of

PAGE = 100


@needs(Role.VIGILANCE)
async def audit_page(request: web.Request) -> web.Response:
    rows = await engine_of(request).store.audit_entries(PAGE, cursor(request))
    return render(
        request,
        "audit.html",
        rows=rows,
        next_before=rows[-1].audit_id if len(rows) == PAGE else None,
    )


def register(app: web.Application) -> None:
    app.router.add_get("/audit", audit_page)
