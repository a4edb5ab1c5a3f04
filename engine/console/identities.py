"""The identity work list, for the vigilance role: the messages whose identity needs a
person (INSi found no one or several, the identity contradicts INSi, cannot be matched
automatically, INSi could not answer, or an INS was récupérée), with the traits used, the
"handled" mark and its comment, and a CSV export. Each view, mark and export is audited.

Rows are those of `ins-engine report identities` (same columns, same formula-safe CSV).
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from engine.console.context import audit
from engine.console.guard import needs
from engine.console.login import redirect
from engine.console.render import SESSION, render
from engine.console.users import Role
from engine.enrich.outcome import NEEDS_ACTION
from engine.enrich.reviews import WorkItem, mark_handled, work_list
from engine.http.params import cursor, local_target, path_id, text_field
from engine.http.view import engine_of
from engine.tools.report import COLUMNS, report_row
from engine.tools.spreadsheet import Row, csv_bytes

PAGE = 100
EXPORT_LIMIT = 100_000
STATES = {"open": False, "handled": True, "all": None}
SEPARATORS = {"semicolon": ";", "comma": ","}
EXPORT_COLUMNS = (*COLUMNS, "handled_at", "handled_by", "handled_comment")
MAX_COMMENT = 500


def _filters(request: web.Request) -> tuple[frozenset[str], str, str]:
    outcome = request.query.get("outcome", "")
    outcomes = frozenset({outcome}) if outcome in NEEDS_ACTION else NEEDS_ACTION
    state = request.query.get("state", "open")
    return (
        outcomes,
        (outcome if outcome in NEEDS_ACTION else ""),
        (state if state in STATES else "open"),
    )


def _row(item: WorkItem) -> Row:
    row = report_row(item.identity)
    review = item.review
    row["message_id"] = item.identity.message_id
    row["handled_at"] = (
        dt.datetime.fromtimestamp(review.at, dt.UTC).astimezone().isoformat(timespec="seconds")
        if review
        else ""
    )
    row["handled_by"] = review.user if review else ""
    row["handled_comment"] = review.comment if review else ""
    return row


@needs(Role.VIGILANCE)
async def identities(request: web.Request) -> web.Response:
    outcomes, outcome, state = _filters(request)
    items = await work_list(
        engine_of(request).store,
        outcomes,
        STATES[state],
        cursor(request),
        PAGE,
    )
    await audit(
        request,
        "view_identities",
        f"work list ({outcome or 'all outcomes'}, {state})",
        f"{len(items)} row(s)",
    )
    return render(
        request,
        "identities.html",
        rows=[_row(item) for item in items],
        outcome=outcome,
        state=state,
        outcomes=sorted(NEEDS_ACTION),
        states=list(STATES),
        next_before=items[-1].identity.message_id if len(items) == PAGE else None,
    )


@needs(Role.VIGILANCE)
async def export(request: web.Request) -> web.Response:
    outcomes, outcome, state = _filters(request)
    separator = SEPARATORS.get(request.query.get("sep", "semicolon"), ";")
    items = await work_list(engine_of(request).store, outcomes, STATES[state], None, EXPORT_LIMIT)
    await audit(
        request,
        "export_identities",
        f"work list ({outcome or 'all outcomes'}, {state})",
        f"{len(items)} row(s) as CSV",
    )
    name = f"identities-{dt.date.today().isoformat()}.csv"
    return web.Response(
        body=csv_bytes((_row(item) for item in items), EXPORT_COLUMNS, separator),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@needs(Role.VIGILANCE)
async def handled(request: web.Request) -> web.Response:
    message_id = path_id(request, "message_id")
    form = await request.post()
    comment = text_field(form.get("comment"), MAX_COMMENT)
    if not comment:
        raise web.HTTPBadRequest(text="a comment is required: what was done for this identity")
    back = local_target(str(form.get("back", "")), "/identities")  # the list as it was filtered
    session = request[SESSION]
    if not await mark_handled(engine_of(request).store, message_id, session.user, comment):
        raise web.HTTPNotFound(text="no identity outcome for this message")
    await audit(request, "mark_handled", f"message {message_id}", comment)
    session.notice = f"message {message_id} marked handled"
    return redirect(back)


def register(app: web.Application) -> None:
    app.router.add_get("/identities", identities)
    app.router.add_get("/identities.csv", export)
    app.router.add_post(r"/identities/{message_id:\d+}/handled", handled)
