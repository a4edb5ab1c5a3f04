"""An HTTP proxy in front of the FHIR test server that a test programs to misbehave, so the
FHIR destination's handling of every failure a real server or network shows can be tested
against the real server's semantics.

    proxy = await FaultProxy.start(server.url)            # plain HTTP on loopback
    proxy = await FaultProxy.start(server.url, pki=pki)   # HTTPS, client certificate required
    proxy.base_url                     # same FHIR base path as the server, on the proxy
    proxy.fail_next(503)               # the next request answered 503 (not forwarded)
    proxy.fail_next(422, count=2)      # the next two: 422 with an OperationOutcome
    proxy.fail_next(429, retry_after="0")
    proxy.hang_next()                  # the next request is held, never answered...
    proxy.release_hung()               # ...until then: its connection is closed, no answer
    proxy.drop_next()                  # the next request's connection is closed, no answer
    proxy.drop_next(after_upstream=True)  # forwarded (the server applies it), answer lost
    proxy.require_token(token_server)  # 401 + WWW-Authenticate without a valid bearer token
    proxy.requests                     # every request seen: SeenRequest(method, path, ...)
    await proxy.seen(2)                # returns once two requests have come in
    await proxy.close()                # releases what is held, closes every connection

Faults are served in the order they were programmed, one per request; a request with no
fault left is forwarded as it came. A token is checked before any fault is taken.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import trustme
from aiohttp import web

if TYPE_CHECKING:
    from tests.support.token_server import TokenServer

BASE_PATH = "/fhir/R4"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
    }
)
FHIR_JSON = "application/fhir+json"
UPSTREAM_GUARD_S = 60.0  # a hang guard on the forwarded request, not a speed assertion
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    410: "deleted",
    412: "multiple-matches",
    422: "business-rule",
    429: "throttled",
    500: "exception",
    502: "transient",
    503: "transient",
    504: "timeout",
}


@dataclass
class SeenRequest:
    """One request the proxy received, whatever it did with it."""

    method: str
    path: str  # path and query, as sent (`/fhir/R4/Patient?identifier=...`)
    headers: dict[str, str]  # lower-case names
    body: Any  # the JSON body, None when empty; the raw text when not JSON
    client_cn: str | None = None  # the client certificate's common name, over mutual TLS
    outcome: str = "pending"  # forwarded, failed, hung, dropped, unauthorized
    status: int | None = None  # the status answered, None when none was

    @property
    def query(self) -> dict[str, list[str]]:
        """The query parameters, decoded: {"identifier": ["system|value"]}."""
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)


@dataclass
class Pki:
    """The certificates of a mutual-TLS proxy, as PEM files: one CA signs the proxy's server
    certificate and the client's; `other_client_*` is signed by a CA the proxy does not trust."""

    folder: Path
    ca_path: Path
    server_cert_path: Path
    server_key_path: Path
    client_cert_path: Path
    client_key_path: Path
    other_client_cert_path: Path
    other_client_key_path: Path
    client_cn: str = "ins-engine-test-client"

    @classmethod
    def create(cls, folder: Path) -> Pki:
        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="ins-engine test CA")
        other_ca = trustme.CA(organization_name="unknown test CA")
        pki = cls(
            folder,
            ca_path=folder / "ca.pem",
            server_cert_path=folder / "server.pem",
            server_key_path=folder / "server.key",
            client_cert_path=folder / "client.pem",
            client_key_path=folder / "client.key",
            other_client_cert_path=folder / "other-client.pem",
            other_client_key_path=folder / "other-client.key",
        )
        ca.cert_pem.write_to_path(str(pki.ca_path))
        server = ca.issue_cert("127.0.0.1", "localhost")
        server.private_key_pem.write_to_path(str(pki.server_key_path))
        for index, blob in enumerate(server.cert_chain_pems):
            blob.write_to_path(str(pki.server_cert_path), append=index > 0)
        client = ca.issue_cert("client.test", common_name=pki.client_cn)
        client.cert_chain_pems[0].write_to_path(str(pki.client_cert_path))
        client.private_key_pem.write_to_path(str(pki.client_key_path))
        other = other_ca.issue_cert("client.test", common_name=pki.client_cn)
        other.cert_chain_pems[0].write_to_path(str(pki.other_client_cert_path))
        other.private_key_pem.write_to_path(str(pki.other_client_key_path))
        return pki

    def server_context(self) -> ssl.SSLContext:
        """The proxy's side: its certificate, and a client certificate from the CA required."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert_path, self.server_key_path)
        context.load_verify_locations(self.ca_path)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self, with_certificate: bool = True) -> ssl.SSLContext:
        """A client's side, for tests of the proxy itself: trusts the CA, presents the
        client certificate unless told not to."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if with_certificate:
            context.load_cert_chain(self.client_cert_path, self.client_key_path)
        return context


@dataclass
class _Fault:
    kind: str  # fail, hang, drop
    status: int = 0
    outcome: bool = True
    retry_after: str | None = None
    after_upstream: bool = False


@dataclass
class FaultProxy:
    upstream: str  # the server's root URL, http://127.0.0.1:PORT
    pki: Pki | None = None
    requests: list[SeenRequest] = field(default_factory=list)
    _faults: deque[_Fault] = field(default_factory=deque)
    _tokens: TokenServer | None = None
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _session: aiohttp.ClientSession | None = None
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @classmethod
    async def start(cls, upstream: str, pki: Pki | None = None) -> FaultProxy:
        """Listen on a free loopback port; over HTTPS requiring a client certificate when
        `pki` is given."""
        proxy = cls(upstream.rstrip("/"), pki)
        proxy._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=UPSTREAM_GUARD_S), auto_decompress=False
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", proxy._handle)
        proxy._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await proxy._runner.setup()
        context = pki.server_context() if pki is not None else None
        proxy._site = web.TCPSite(proxy._runner, "127.0.0.1", 0, ssl_context=context)
        await proxy._site.start()
        return proxy

    @property
    def port(self) -> int:
        assert self._site is not None and self._site._server is not None
        sockets = self._site._server.sockets  # type: ignore[attr-defined]
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.pki is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}{BASE_PATH}"

    # -- programming -------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        outcome: bool = True,
        retry_after: str | int | None = None,
    ) -> None:
        """Answer the next `count` requests with `status`, without forwarding them. With
        `outcome`, the body is an OperationOutcome (application/fhir+json), else a short
        text. A 429 or 503 carries `Retry-After` (`retry_after`, "1" for a 429 by default)."""
        if retry_after is None and status == 429:
            retry_after = "1"
        fault = _Fault("fail", status, outcome, None if retry_after is None else str(retry_after))
        self._faults.extend([fault] * count)

    def hang_next(self, count: int = 1) -> None:
        """Hold the next `count` requests without answering, until `release_hung()` or
        `close()` closes their connections."""
        self._faults.extend([_Fault("hang")] * count)

    def drop_next(self, count: int = 1, after_upstream: bool = False) -> None:
        """Close the connection of the next `count` requests without an answer; with
        `after_upstream`, only once the server has done the request (an answer lost)."""
        self._faults.extend([_Fault("drop", after_upstream=after_upstream)] * count)

    def require_token(self, tokens: TokenServer | None) -> None:
        """Refuse (401, WWW-Authenticate: Bearer) a request without a bearer token that
        `tokens` issued and that has not expired; None stops asking."""
        self._tokens = tokens

    def release_hung(self) -> None:
        """Close the connections of the requests held so far, without an answer."""
        self._released.set()
        self._released = asyncio.Event()

    async def seen(self, count: int, timeout_s: float = UPSTREAM_GUARD_S) -> list[SeenRequest]:
        """Wait until `count` requests have come in (held ones included); returns them."""
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests[:count]

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def answered(self) -> list[int | None]:
        """The status answered to each request, in order (None: none was)."""
        return [seen.status for seen in self.requests]

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- serving -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen = SeenRequest(
            request.method,
            request.path_qs,
            {name.lower(): value for name, value in request.headers.items()},
            _json_or_text(raw),
            _client_cn(request),
        )
        async with self._arrived:
            self.requests.append(seen)
            self._arrived.notify_all()

        if self._tokens is not None:
            refusal = self._check_token(request.headers.get("Authorization"))
            if refusal is not None:
                seen.outcome, seen.status = "unauthorized", 401
                return _outcome_response(401, "invalid or missing bearer token", refusal)

        fault = self._faults.popleft() if self._faults else None
        if fault is None:
            return await self._forward(request, raw, seen)
        if fault.kind == "fail":
            seen.outcome, seen.status = "failed", fault.status
            headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            if fault.outcome:
                return _outcome_response(fault.status, "injected fault", headers)
            return web.Response(
                status=fault.status, text="injected fault", content_type="text/plain",
                headers=headers,
            )  # fmt: skip
        if fault.kind == "hang":
            seen.outcome = "hung"
            await self._released.wait()  # this request's event, even after release_hung()
            return self._abort(request)
        if fault.after_upstream:
            await self._forward(request, raw, seen)
        seen.outcome, seen.status = "dropped", None
        return self._abort(request)

    def _check_token(self, authorization: str | None) -> dict[str, str] | None:
        """None when the token is good, else the WWW-Authenticate header to answer."""
        assert self._tokens is not None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return {"WWW-Authenticate": 'Bearer realm="fhir"'}
        if not self._tokens.is_valid(token.strip()):
            return {
                "WWW-Authenticate": 'Bearer realm="fhir", error="invalid_token", '
                'error_description="unknown or expired token"'
            }
        return None

    async def _forward(
        self, request: web.Request, raw: bytes, seen: SeenRequest
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = {
            name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP
        }
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=raw or None
        ) as answer:
            body = await answer.read()
            out_headers = {
                name: value
                for name, value in answer.headers.items()
                if name.lower() not in HOP_BY_HOP and name.lower() != "date"
            }
        if "Location" in out_headers:
            out_headers["Location"] = out_headers["Location"].replace(self.upstream, self.url)
        seen.outcome, seen.status = "forwarded", answer.status
        return web.Response(status=answer.status, body=body, headers=out_headers)

    def _abort(self, request: web.Request) -> web.StreamResponse:
        """Close the connection under the request: the client gets no answer at all."""
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp drops a cancelled handler without answering


def _outcome_response(status: int, text: str, headers: dict[str, str]) -> web.Response:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": ISSUE_CODES.get(status, "processing"),
                "details": {"text": text},
            }
        ],
    }
    return web.Response(
        status=status,
        body=orjson.dumps(outcome),
        headers={**headers, "Content-Type": f"{FHIR_JSON}; charset=utf-8"},
    )


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


def _client_cn(request: web.Request) -> str | None:
    transport = request.transport
    if transport is None:
        return None
    certificate = transport.get_extra_info("peercert")
    if not certificate:
        return None
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
