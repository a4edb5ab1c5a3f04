"""Mounting the console on the HTTP application: its guard, its static files, its pages."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from engine.console import audit_page, dashboard, identities, login, messages, queues
from engine.console.context import CONSOLE, Console
from engine.console.guard import guard
from engine.http.server import STATIC_PREFIX
from engine.http.view import engine_of_app
from engine.logs import get_logger

STATIC = Path(__file__).parent / "static"
log = get_logger("engine.console")


def register(app: web.Application) -> None:
    engine = engine_of_app(app)
    console = Console.from_settings(engine.http)
    app[CONSOLE] = console
    if console.users.empty:
        log.warning(
            "console: no user can log in; add one with ins-engine user add",
            path=engine.http.users,
        )
    app.middlewares.append(guard(console.sessions, console.users))
    app.router.add_static(STATIC_PREFIX, STATIC, append_version=False)
    login.register(app)
    dashboard.register(app, engine.metrics)
    queues.register(app)
    messages.register(app)
    identities.register(app)
    audit_page.register(app)
