"""The FHIR server as the feed sees it: search, conditional update and delete of Patients.

One aiohttp session per destination lane (its connection kept alive between messages),
with the destination's TLS (a client certificate for mutual TLS) and, when configured, an
OAuth 2 bearer token (`engine.fhir.oauth`). A request that cannot be made or answered
raises `Unreachable` with a safe text; any answer, error statuses included, is returned as
`Answer` for the sender to judge (`engine.fhir.outcomes`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
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


def by_identifier(system: str, value: str) -> str:
    """`Patient?identifier=system%7Cvalue`, the query ITI-104 keys every interaction on (the
    `|` percent-encoded, the system's colons left readable)."""
    return "Patient?" + urlencode({"identifier": f"{system}|{value}"}, safe=":")


class FhirServer:
    def __init__(self, settings: FhirSettings, destination: DestinationSettings) -> None:
        tls = destination.tls
        self._base = settings.base_url.rstrip("/") + "/"
        self._ssl: ssl.SSLContext | bool = client_context(tls) if tls else True
        connect, answer = destination.connect_timeout_s, destination.ack_timeout_s
        self._timeout = aiohttp.ClientTimeout(
            total=connect + answer, sock_connect=connect, sock_read=answer
        )
        self._oauth = settings.oauth
        self._session: aiohttp.ClientSession | None = None
        self._tokens: TokenSource | None = None

    def _open(self) -> aiohttp.ClientSession:
        """The lane's session, opened on its first request (inside the delivering loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Accept": FHIR_JSON},
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=1),
            )
            if self._oauth is not None:
                self._tokens = TokenSource(self._oauth, self._session)
        return self._session

    async def send(self, request: Request) -> Answer:
        answer = await self._exchange(request)
        if answer.status == 401 and self._tokens is not None:
            self._tokens.forget()  # expired or revoked early: one new token, one more try
            answer = await self._exchange(request)
        return answer

    async def _exchange(self, request: Request) -> Answer:
        session = self._open()
        headers = {}
        if request.body is not None:
            headers["Content-Type"] = FHIR_JSON
        try:
            if self._tokens is not None:
                headers["Authorization"] = f"Bearer {await self._tokens.token()}"
            content = orjson.dumps(request.body) if request.body is not None else None
            async with session.request(
                request.method,
                self._base + request.url,
                data=content,
                headers=headers,
                allow_redirects=False,
            ) as answer:
                raw = await answer.read()
                status, location = answer.status, answer.headers.get("Location", "")
        except TokenError as error:
            raise Unreachable(f"no OAuth token: {error}") from None
        except TimeoutError as error:  # aiohttp's timeouts are TimeoutError too
            raise Unreachable(f"FHIR server timeout ({type(error).__name__})") from None
        except aiohttp.ClientError as error:
            raise Unreachable(f"FHIR server unreachable ({type(error).__name__})") from None
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        return Answer(status, body, location)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
