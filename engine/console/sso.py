"""Single sign-on pages: off to the identity provider, and back with a code.

`GET /login/oidc` starts a sign-in (state, nonce and PKCE verifier kept here, bound to the
browser by a cookie) and sends the browser to the provider. `GET /login/oidc/callback` takes
the provider's answer: a state that is not this browser's sign-in, an error from the
provider, an ID token that does not check, or an account whose roles claim maps to no
console role each get a page that says so, with the way back to the login page, and an
audit row (but a callback with no sign-in under way at all, which anyone can send as often
as they like: that is only logged); no session is opened. A sign-in that succeeds opens a
session as a password does.

The landing is a page that moves on by itself rather than a redirect: the callback arrives
from the provider's site, and a browser does not send a SameSite=Strict cookie (the
session's) on a redirect chain that started on another site.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from engine.base.logs import get_logger
from engine.console.context import audit, client_address, console_of
from engine.console.login import open_session
from engine.console.oidc import OidcClient, Pending, ProviderError
from engine.console.render import render
from engine.http.params import local_target

SIGN_IN_COOKIE = "ins_engine_sign_in"
CALLBACK_PATH = "/login/oidc/callback"
log = get_logger("engine.console")


async def start(request: web.Request) -> web.Response:
    console = console_of(request)
    oidc = _client(request)
    pending = Pending.new(
        _redirect_url(request, oidc), local_target(request.query.get("next"), "/")
    )
    try:
        location = await oidc.authorization_url(pending)
    except ProviderError as error:
        log.error("single sign-on unavailable", error=str(error))
        return _refused(request, 502, "Single sign-on is unavailable: see the engine's log.")
    response = web.Response(status=303, headers={"Location": location})
    response.set_cookie(
        SIGN_IN_COOKIE,
        console.sign_ins.add(pending),
        httponly=True,
        samesite="Lax",  # sent back on the provider's top-level redirect to the callback
        secure=console.secure_cookies,
        path="/login/oidc",
        max_age=600,
    )
    return response


async def callback(request: web.Request) -> web.Response:
    console = console_of(request)
    oidc = _client(request)
    pending = console.sign_ins.take(request.cookies.get(SIGN_IN_COOKIE))
    state = request.query.get("state", "")
    if pending is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
        log.warning("single sign-on refused: unknown or stale state", peer=client_address(request))
        if pending is not None:  # without a sign-in under way, anyone could fill the audit
            await audit(request, "login_refused", detail="single sign-on: another state")
        return _refused(request, 400, "This sign-in was not started here, or has expired.")
    if "error" in request.query or "code" not in request.query:
        log.warning("single sign-on refused by the provider", peer=client_address(request))
        await audit(request, "login_refused", detail="single sign-on: refused by the provider")
        return _refused(request, 403, "The identity provider did not sign you in.")
    try:
        identity = await oidc.identity(request.query["code"], pending)
    except ProviderError as error:
        log.error("single sign-on failed", error=str(error), peer=client_address(request))
        await audit(request, "login_refused", detail="single sign-on: token refused")
        return _refused(request, 502, "The identity provider's answer was refused: see the log.")
    if identity.role is None:
        log.warning("single sign-on refused: no role", peer=client_address(request))
        await audit(request, "login_refused", detail="single sign-on: no role", user=identity.user)
        return _refused(
            request,
            403,
            f"Your account ({identity.user}) has no role on this console. "
            "Ask for one of its groups to be given to you.",
        )
    response = render(request, "signed_in.html", target=pending.target)
    response.headers["Refresh"] = f"0; url={pending.target}"
    await open_session(request, response, identity.user, identity.role, single_sign_on=True)
    response.del_cookie(SIGN_IN_COOKIE, path="/login/oidc")
    return response


def _client(request: web.Request) -> OidcClient:
    oidc = console_of(request).oidc
    assert oidc is not None  # the pages exist only when it is configured
    return oidc


def _redirect_url(request: web.Request, oidc: OidcClient) -> str:
    """The configured callback URL, else this host's (a reverse proxy that terminates TLS
    should configure it: the scheme seen here would be http)."""
    return oidc.settings.redirect_url or f"{request.scheme}://{request.host}{CALLBACK_PATH}"


def _refused(request: web.Request, status: int, reason: str) -> web.Response:
    return render(request, "sign_in_refused.html", status=status, reason=reason)


def register(app: web.Application, oidc: OidcClient | None) -> None:
    """The pages, when single sign-on is configured."""
    if oidc is None:
        return
    app.router.add_get("/login/oidc", start)
    app.router.add_get(CALLBACK_PATH, callback)

    async def close(_: web.Application) -> None:
        await oidc.close()

    app.on_cleanup.append(close)
