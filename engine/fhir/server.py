"""The FHIR server as the feed sees it: search, conditional update and delete of Patients.

One `httpx.AsyncClient` per destination lane (its connections kept alive between messages),
with the destination's TLS (a client certificate for mutual TLS) and, when configured, an
OAuth 2 bearer token (`engine.fhir.oauth`). A request that cannot be made or answered
raises `Unreachable` with a safe text; any answer, error statuses included, is returned as
`Answer` for the sender to judge (`engine.fhir.outcomes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from engine.config.settings import DestinationSettings
from engine.config.tls import client_context
from engine.fhir.oauth import TokenError, TokenSource
from engine.fhir.settings import FhirSettings

FHIR_JSON = "application/fhir+json"


class Unreachable(Exception):
    """No answer from the server (connection, timeout, token); the text is safe to log."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON answered, or None
    location: str = ""  # the Location header (the resource created or updated)


@dataclass(frozen=True)
class Request:
    """One interaction of the feed: what route tests show and the sender makes."""

    method: str  # GET, PUT, DELETE
    url: str  # relative to the base: `Patient?identifier=urn:oid:1.2.3|800001`
    body: dict[str, Any] | None = None
    if_match: str | None = None  # a version (`W/"3"`) for a versioned update


def by_identifier(system: str, value: str) -> str:
    """`Patient?identifier=system%7Cvalue`, the query ITI-104 keys every interaction on (the
    `|` percent-encoded, the system's colons left readable)."""
    return "Patient?" + urlencode({"identifier": f"{system}|{value}"}, safe=":")


class FhirServer:
    def __init__(self, settings: FhirSettings, destination: DestinationSettings) -> None:
        tls = destination.tls
        self._base = settings.base_url.rstrip("/") + "/"
        self._http = httpx.AsyncClient(
            verify=client_context(tls) if tls else True,
            timeout=httpx.Timeout(destination.ack_timeout_s, connect=destination.connect_timeout_s),
            headers={"Accept": FHIR_JSON},
            follow_redirects=False,
        )
        self._tokens = TokenSource(settings.oauth, self._http) if settings.oauth else None

    async def send(self, request: Request) -> Answer:
        answer = await self._exchange(request)
        if answer.status == 401 and self._tokens is not None:
            self._tokens.forget()  # expired or revoked early: one new token, one more try
            answer = await self._exchange(request)
        return answer

    async def _exchange(self, request: Request) -> Answer:
        headers = {}
        if request.body is not None:
            headers["Content-Type"] = FHIR_JSON
        if request.if_match is not None:
            headers["If-Match"] = request.if_match
        try:
            if self._tokens is not None:
                headers["Authorization"] = f"Bearer {await self._tokens.token()}"
            content = orjson.dumps(request.body) if request.body is not None else None
            answer = await self._http.request(
                request.method, self._base + request.url, content=content, headers=headers
            )
        except TokenError as error:
            raise Unreachable(f"no OAuth token: {error}") from None
        except httpx.TimeoutException as error:
            raise Unreachable(f"FHIR server timeout ({type(error).__name__})") from None
        except httpx.HTTPError as error:
            raise Unreachable(f"FHIR server unreachable ({type(error).__name__})") from None
        try:
            body = orjson.loads(answer.content) if answer.content else None
        except orjson.JSONDecodeError:
            body = None
        return Answer(answer.status_code, body, answer.headers.get("location", ""))

    async def close(self) -> None:
        await self._http.aclose()
