"""Logging in and out.

The login form carries a one-time token that must match a cookie set with the form (no
session exists yet to hold a CSRF token). A wrong name or password gets one answer, after
the same scrypt work; too many of them for a name from one client get 429 with the seconds
to wait, without checking the password (`engine.console.brake`). Each login, failure,
lockout and logout is audited.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets

from aiohttp import web

from engine.base.logs import get_logger
from engine.console.context import audit, client_address, console_of
from engine.console.guard import SESSION_COOKIE
from engine.console.render import SESSION, render
from engine.console.users import Role, dummy_hash, verify_password
from engine.errors import ConfigError
from engine.http.params import local_target, text_field

LOGIN_COOKIE = "ins_engine_login"
log = get_logger("engine.console")


async def login_page(request: web.Request) -> web.Response:
    return _form(request, status=200, error="")


def _form(request: web.Request, status: int, error: str, retry_after: float = 0) -> web.Response:
    console = console_of(request)
    # One token per browser until it logs in: a second login page (another tab, a redirect
    # of a favicon request) must not invalidate the form already shown.
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status=status,
        login_token=token,
        next=local_target(request.query.get("next"), "/"),
        error=error,
        no_users=console.users.empty and console.oidc is None,
        single_sign_on=console.oidc.settings.label if console.oidc else "",
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=console.secure_cookies,
        path="/login",
    )
    if retry_after:
        response.headers["Retry-After"] = str(int(retry_after) + 1)
    return response


async def login(request: web.Request) -> web.Response:
    console = console_of(request)
    form = await request.post()
    target = local_target(str(form.get("next", "")), "/")  # refused before any password work
    expected = request.cookies.get(LOGIN_COOKIE, "")
    given = str(form.get("login_token", ""))
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPForbidden(text="missing or stale login form: reload the page")
    name = text_field(form.get("name"), 64)
    password = str(form.get("password", ""))
    peer = client_address(request)
    wait = await console.brake.retry_after(name, peer)
    if wait > 0:
        log.warning("console login refused: too many failures", peer=peer)
        return _form(request, 429, f"Too many failed logins: try again in {int(wait) + 1} s.", wait)
    try:
        user = console.users.get(name)
    except ConfigError as error:
        log.error("console users file unreadable", error=str(error))
        return _form(request, 503, "The users file cannot be read: see the engine's log.")
    hashed = user.password_hash if user else dummy_hash()
    matches = await asyncio.to_thread(verify_password, password, hashed)
    if user is None or not matches:
        locked = await console.brake.failed(name, peer)
        log.warning("console login failed", peer=peer)
        await audit(request, "login_failed", target=peer, user=name)
        if locked:
            log.warning("console login locked: too many failures", peer=peer)
            await audit(request, "login_locked", target=peer, detail="too many failures", user=name)
        return _form(request, 401, "Wrong user name or password.")
    await console.brake.succeeded(name, peer)
    response = redirect(target)
    await open_session(request, response, user.name, user.role)
    response.del_cookie(LOGIN_COOKIE, path="/login")
    return response


async def open_session(
    request: web.Request,
    response: web.Response,
    user: str,
    role: Role,
    single_sign_on: bool = False,
) -> None:
    """Log `user` in: a new session, its cookie on `response`, an audit row."""
    console = console_of(request)
    session = console.sessions.open(user, role, single_sign_on)
    request[SESSION] = session
    how = "single sign-on" if single_sign_on else "password"
    await audit(request, "login", detail=f"{role.label} ({how})")
    log.info("console login", peer=client_address(request), outcome="ok", method=how)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="Strict",
        secure=console.secure_cookies,
        path="/",
    )


async def logout(request: web.Request) -> web.StreamResponse:
    """The guard has checked the session and the CSRF token."""
    await audit(request, "logout")
    console_of(request).sessions.close(request[SESSION].token)
    response = redirect("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def redirect(location: str) -> web.Response:
    """303 See Other, as a response that keeps the cookies set on it."""
    return web.Response(status=303, headers={"Location": location})


def register(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
