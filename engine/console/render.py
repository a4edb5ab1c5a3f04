"""Server-rendered pages: Jinja2 templates shipped with the package, escaped by default."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import jinja2
from aiohttp import web

from engine.console.sessions import Session
from engine.console.users import Role
from engine.http.view import engine_of

SESSION = web.RequestKey("console_session", Session)


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("engine.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["age"] = age
    return env


def when(moment: float | None) -> str:
    """Local date and time of an epoch, to the second."""
    if moment is None:
        return "—"
    return dt.datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    """`42 s`, `3 min`, `2 h 07`, `3 d 04 h`: how long something has waited."""
    if seconds is None:
        return "—"
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d}"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A page with the layout's context: who is logged in, the CSRF token, the banners of
    what the steps share (INSi's SIMULATED)."""
    session = request.get(SESSION)
    engine = engine_of(request)
    text = (
        environment()
        .get_template(template)
        .render(
            session=session,
            csrf=session.csrf if session else "",
            notice=session.take_notice() if session else "",
            Role=Role,
            banners=[b for panel in engine.panels().values() if (b := panel.banner())],
            path=request.path,
            **context,
        )
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
