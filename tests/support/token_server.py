"""An OAuth 2.0 token endpoint (client credentials grant, RFC 6749 section 4.4) for the FHIR
destination's tests: the engine gets its bearer tokens here, the FaultProxy checks them.

    tokens = await TokenServer.start(client_id="ins-engine", client_secret="s3cret")
    tokens.token_url                   # http://127.0.0.1:PORT/token
    tokens.expires_in = 60             # what the next tokens announce (seconds)
    tokens.issued                      # how many tokens it issued
    tokens.requests                    # every token request: TokenRequest(...)
    tokens.expire_all()                # every token issued so far is now expired
    tokens.fail_next(503)              # the next token request answered 503
    await tokens.close()

The client authenticates with HTTP Basic or with `client_id`/`client_secret` form fields;
a wrong secret is answered 401 `invalid_client`. Tokens are opaque random strings. A token
expires when `expires_in` seconds have passed on the monotonic clock or by `expire_all()`,
which is what tests use: they never wait for a clock.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

CLIENT_ID = "ins-engine"
CLIENT_SECRET = "test-client-secret"


@dataclass
class TokenRequest:
    """One request to the token endpoint, and what it was answered."""

    client_id: str | None
    grant_type: str | None
    scope: str | None
    auth: str  # basic, form or none
    status: int = 0


@dataclass
class TokenServer:
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    expires_in: int = 300
    scopes: frozenset[str] | None = None  # the scopes it grants; None: any
    requests: list[TokenRequest] = field(default_factory=list)
    _tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    _faults: deque[int] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @classmethod
    async def start(
        cls,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        expires_in: int = 300,
        scopes: frozenset[str] | None = None,
    ) -> TokenServer:
        server = cls(client_id, client_secret, expires_in, scopes)
        app = web.Application()
        app.router.add_post("/token", server._token)
        server._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await server._runner.setup()
        server._site = web.TCPSite(server._runner, "127.0.0.1", 0)
        await server._site.start()
        return server

    @property
    def port(self) -> int:
        assert self._site is not None and self._site._server is not None
        sockets = self._site._server.sockets  # type: ignore[attr-defined]
        return int(sockets[0].getsockname()[1])

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    @property
    def issued(self) -> int:
        """How many tokens it issued."""
        return len(self._tokens)

    @property
    def tokens(self) -> list[str]:
        """The tokens issued, in order."""
        return list(self._tokens)

    def is_valid(self, token: str) -> bool:
        """Issued here and not expired."""
        expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def expire_all(self) -> None:
        """Every token issued so far is expired from now on (later ones are not)."""
        for token in self._tokens:
            self._tokens[token] = float("-inf")

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next `count` token requests with `status` (a JSON error body)."""
        self._faults.extend([status] * count)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = urllib.parse.parse_qs(await request.text(), keep_blank_values=True)

        def field_(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        client_id, client_secret, auth = _basic(request.headers.get("Authorization"))
        if auth == "none" and field_("client_id") is not None:
            client_id, client_secret, auth = field_("client_id"), field_("client_secret"), "form"
        seen = TokenRequest(client_id, field_("grant_type"), field_("scope"), auth)
        self.requests.append(seen)

        if self._faults:
            seen.status = self._faults.popleft()
            return _error(seen.status, "temporarily_unavailable")
        if auth == "bad":
            seen.status = 400
            return _error(400, "invalid_request", "malformed Basic credentials")
        if client_id != self.client_id or not secrets.compare_digest(
            (client_secret or "").encode(), self.client_secret.encode()
        ):
            seen.status = 401
            challenge = {"WWW-Authenticate": 'Basic realm="token"'} if auth == "basic" else {}
            return _error(401, "invalid_client", headers=challenge)
        if seen.grant_type != "client_credentials":
            seen.status = 400
            return _error(400, "unsupported_grant_type")
        if self.scopes is not None and seen.scope is not None:
            asked = set(seen.scope.split())
            if not asked <= self.scopes:
                seen.status = 400
                return _error(400, "invalid_scope")

        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.expires_in
        seen.status = 200
        body: dict[str, object] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if seen.scope is not None:
            body["scope"] = seen.scope
        return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _basic(authorization: str | None) -> tuple[str | None, str | None, str]:
    """(client_id, client_secret, how): how is basic, none or bad. The credentials are
    form-urlencoded inside Basic (RFC 6749 section 2.3.1)."""
    if authorization is None:
        return None, None, "none"
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None, None, "none"
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None, "bad"
    user, colon, password = decoded.partition(":")
    if not colon:
        return None, None, "bad"
    return urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password), "basic"


def _error(
    status: int,
    error: str,
    description: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": error} | ({"error_description": description} if description else {})
    return web.json_response(
        body, status=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )
