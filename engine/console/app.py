"""Mounting the console on the HTTP application: its guard, its static files, its pages."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from engine.base.logs import get_logger
from engine.console import audit_page, dashboard, identities, login, messages, queues, sso
from engine.console.context import CONSOLE, Console
from engine.console.guard import guard
from engine.http.server import STATIC_PREFIX
from engine.http.view import engine_of_app

STATIC = Path(__file__).parent / "static"
FILES = {path.name: path for path in STATIC.iterdir() if path.is_file()}
log = get_logger("engine.console")


async def static_file(request: web.Request) -> web.FileResponse:
    """One of the console's own files, looked up by name: a name a visitor makes up (`..`,
    NUL, 4000 characters) never reaches the file system, where some fail as OSError."""
    path = FILES.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(path)


def register(app: web.Application) -> None:
    engine = engine_of_app(app)
    console = Console.from_settings(engine.http, engine.store)
    app[CONSOLE] = console
    if console.users.empty and console.oidc is None:
        log.warning(
            "console: no user can log in; add one with ins-engine user add",
            path=engine.http.users,
        )
    if console.oidc is not None and not console.oidc.has_secret:
        log.error(
            "console single sign-on off until its client secret is set",
            variable=console.oidc.settings.client_secret_env,
        )
    app.middlewares.append(guard(console.sessions, console.users))
    app.router.add_get(STATIC_PREFIX + "{name}", static_file)
    login.register(app)
    sso.register(app, console.oidc)
    dashboard.register(app, engine)
    queues.register(app)
    messages.register(app)
    identities.register(app)
    audit_page.register(app)
