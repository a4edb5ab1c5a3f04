"""OAuth 2 client credentials for a FHIR server: one token, cached, fetched again when due.

The token is asked for on the first request and kept until `MARGIN_S` before it expires,
or until the server answers 401 (then one new token is fetched and the request sent once
more). The client secret is read from the environment when the token is asked for, so a
rotated secret is taken without a restart; neither it nor the token ever reaches a log line
or an error text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx

from engine.fhir.settings import OAuthSettings

MARGIN_S = 30.0  # fetch a new token this long before the current one expires
DEFAULT_LIFETIME_S = 300.0  # when the token endpoint does not say (`expires_in`)


class TokenError(Exception):
    """The token endpoint did not give a token; the text is safe to log (no secret)."""


class TokenSource:
    def __init__(
        self,
        settings: OAuthSettings,
        http: httpx.AsyncClient,
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
        try:
            answer = await self._http.post(
                settings.token_url, data=form, auth=(settings.client_id, secret)
            )
        except httpx.HTTPError as error:
            raise TokenError(f"token endpoint unreachable: {type(error).__name__}") from None
        if answer.status_code != 200:
            raise TokenError(f"token endpoint answered {answer.status_code}{_oauth_error(answer)}")
        try:
            body = answer.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", DEFAULT_LIFETIME_S))
        except (ValueError, KeyError, TypeError):
            raise TokenError("token endpoint answered without a usable access_token") from None
        if not isinstance(token, str) or not token:
            raise TokenError("token endpoint answered without a usable access_token")
        self._token = token
        self._due = self._clock() + max(lifetime - MARGIN_S, lifetime / 2)
        self.fetched += 1


def _oauth_error(answer: httpx.Response) -> str:
    """The OAuth `error` code of a refusal (`invalid_client`...), a fixed vocabulary."""
    try:
        code = answer.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({code})" if isinstance(code, str) and code.replace("_", "").isalpha() else ""
