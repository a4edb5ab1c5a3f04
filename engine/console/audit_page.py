"""The audit trail, for the vigilance role: every login, action and view of patient data."""

from __future__ import annotations

from aiohttp import web

from engine.console.guard import needs
from engine.console.render import render
from engine.console.users import Role
from engine.http.view import engine_of
from engine.store.base import row_id

PAGE = 100


@needs(Role.VIGILANCE)
async def audit_page(request: web.Request) -> web.Response:
    rows = await engine_of(request).store.audit_entries(
        PAGE, row_id(request.query.get("before", ""))
    )
    return render(
        request,
        "audit.html",
        rows=rows,
        next_before=rows[-1].audit_id if len(rows) == PAGE else None,
    )


def register(app: web.Application) -> None:
    app.router.add_get("/audit", audit_page)
