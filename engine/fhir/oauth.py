"""OAuth 2 client credentials for a FHIR server: one token, cached, fetched again when due.

The token is asked for on the first request and kept until `MARGIN_S` before it expires,
or until the server answers 401 (then one new token is fetched and the request sent once
more). The client secret is read from the environment when the token is asked for, so a
rotated secret is taken without a restart; neither it nor the token ever reaches a log line
or an error text.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import orjson

from engine.fhir.settings import OAuthSettings

MARGIN_S = 30.0  # fetch a new token this long before the current one expires
DEFAULT_LIFETIME_S = 300.0  # when the token endpoint does not say (`expires_in`)


class TokenError(Exception):
    """The token endpoint did not give a token; the text is safe to log (no secret)."""


class TokenSource:
    def __init__(
        self,
        settings: OAuthSettings,
        http: aiohttp.ClientSession,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._token: str | None = None
        self._due = 0.0
        self.fetched = 0  # tokens fetched: a metric of how often the endpoint is asked

    async def token(self) -> str:
        if self._token is None or self._clock() >= self._due:
            await self._fetch()
        assert self._token is not None
        return self._token

    def forget(self) -> None:
        """The server refused the token (401): the next request fetches a new one."""
        self._token = None

    async def _fetch(self) -> None:
        settings = self._settings
        secret = os.environ.get(settings.client_secret_env)
        if not secret:
            raise TokenError(f"environment variable {settings.client_secret_env} is not set")
        form = {"grant_type": "client_credentials"}
        if settings.scope:
            form["scope"] = settings.scope
        headers = {"Authorization": basic_credentials(settings.client_id, secret)}
        try:
            async with self._http.post(settings.token_url, data=form, headers=headers) as answer:
                status, raw = answer.status, await answer.read()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise TokenError(f"token endpoint unreachable: {type(error).__name__}") from None
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if status != 200:
            raise TokenError(f"token endpoint answered {status}{_oauth_error(body)}")
        try:
            token = body["access_token"]
            lifetime = float(body.get("expires_in", DEFAULT_LIFETIME_S))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TokenError("token endpoint answered without a usable access_token") from None
        if not isinstance(token, str) or not token:
            raise TokenError("token endpoint answered without a usable access_token")
        self._token = token
        self._due = self._clock() + max(lifetime - MARGIN_S, lifetime / 2)
        self.fetched += 1


def basic_credentials(client_id: str, secret: str) -> str:
    """HTTP Basic client authentication as RFC 6749 (2.3.1) says: each part form-encoded."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _oauth_error(body: Any) -> str:
    """The OAuth `error` code of a refusal (`invalid_client`...), a fixed vocabulary."""
    code = body.get("error") if isinstance(body, dict) else None
    return f" ({code})" if isinstance(code, str) and code.replace("_", "").isalpha() else ""
