"""Who may reach what: every console page needs a session, every change a CSRF token.

Open without a session: health, metrics (their own token), the login page and the static
files; the API checks its own bearer token. Anything else without a live session is sent to
the login page (a page) or refused with 401 (a fragment or an action). A page declares the
least role it needs with `@needs(Role.X)`; a lower role gets 403 (a browser, a page that
says which role is needed with a way back to the dashboard). A request that changes
something (any method but GET and HEAD) must carry the session's CSRF token, in the form
field `csrf_token` or the `X-CSRF-Token` header, and, when the browser says where it comes
from (`Origin`), come from this very site.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web

from engine.base.logs import get_logger
from engine.console.render import SESSION, render
from engine.console.sessions import Session, Sessions
from engine.console.users import Role, UsersFile
from engine.http.params import local_target
from engine.http.server import STATIC_PREFIX, Handler

SESSION_COOKIE = "ins_engine_session"
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/metrics", "/login", "/login/oidc", "/login/oidc/callback"}
)
API_PREFIX = "/api/"
SAFE_METHODS = frozenset({"GET", "HEAD"})

log = get_logger("engine.console")
Page = Callable[[web.Request], Awaitable[web.StreamResponse]]


def needs(role: Role) -> Callable[[Page], Page]:
    """Declare the least role a page or action needs (default: viewer)."""

    def mark(page: Page) -> Page:
        page.role = role  # type: ignore[attr-defined]
        return page

    return mark


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith((STATIC_PREFIX, API_PREFIX))


def guard(sessions: Sessions, users: UsersFile) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request.path):
            return await handler(request)
        session = current_session(request, sessions, users)
        if session is None:
            if wants_page(request):
                target = local_target(request.path_qs, "/")
                raise web.HTTPSeeOther(f"/login?next={quote(target, safe='')}")
            raise web.HTTPUnauthorized(text="log in first")
        request[SESSION] = session
        needed = getattr(request.match_info.handler, "role", Role.VIEWER)
        if session.role < needed:
            if wants_page(request):  # a page with the way back: the dashboard, or log out
                return render(request, "forbidden.html", 403, needed=needed.label)
            raise web.HTTPForbidden(text=f"the {needed.label} role is needed")
        if request.method not in SAFE_METHODS:
            await check_csrf(request, session.csrf)
        return await handler(request)

    return middleware


def wants_page(request: web.Request) -> bool:
    """A browser navigating to a page (sent to the login form), not a fragment or a file."""
    return (
        request.method in SAFE_METHODS
        and "HX-Request" not in request.headers
        and "text/html" in request.headers.get("Accept", "")
    )


def current_session(request: web.Request, sessions: Sessions, users: UsersFile) -> Session | None:
    """The request's live session, ended if its local user was removed or changed role
    since (a single sign-on session keeps the role the provider gave at sign-in)."""
    token = request.cookies.get(SESSION_COOKIE)
    session = sessions.get(token)
    if session is None or session.single_sign_on:
        return session
    user = users.get(session.user)
    if user is None or user.role is not session.role:
        sessions.close(session.token)
        return None
    return session


async def check_csrf(request: web.Request, expected: str) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and not same_origin(origin, request):
        log.warning("cross-site request refused", path=request.path)
        raise web.HTTPForbidden(text="cross-site request refused")
    given = request.headers.get("X-CSRF-Token")
    if given is None:
        form = await request.post()
        field = form.get("csrf_token")
        given = field if isinstance(field, str) else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("request without a valid CSRF token refused", path=request.path)
        raise web.HTTPForbidden(text="missing or stale form token: reload the page")


def same_origin(origin: str, request: web.Request) -> bool:
    """The browser's Origin names this host and port (the scheme may differ behind a proxy
    that terminates TLS)."""
    return urlsplit(origin).netloc == request.host
