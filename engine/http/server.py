"""The HTTP listener: an aiohttp application on the engine's event loop.

Every answer carries headers that keep pages out of caches and frames and allow scripts
and styles from the engine only (the console ships its few files itself). An unexpected
error answers 500 with a fixed text: its details go to the log, redacted like any other.
Connections are counted and timed beneath aiohttp (`engine.http.connections`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from engine.base.hosts import is_loopback_host
from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics
from engine.config.settings import HttpSettings, parse_address
from engine.config.tls import server_context
from engine.http.connections import Connections
from engine.http.tokens import configured_token

log = get_logger("engine.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
STATIC_PREFIX = "/static/"


def secure_headers(tls: bool) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:  # a redirect or an error page: answer it as such
            response = web.Response(status=error.status, body=error.body, headers=error.headers)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["X-Frame-Options"] = "DENY"
        headers["Referrer-Policy"] = "no-referrer"
        if request.path.startswith(STATIC_PREFIX):
            headers.setdefault("Cache-Control", "public, max-age=3600")
        else:
            headers["Cache-Control"] = "no-store"
        if tls:
            headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    return middleware


@web.middleware
async def logged_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log line per request (debug, or error for a failure), with the route pattern
    rather than the path (a path may hold an id), and a fixed text for a 500."""
    started = time.perf_counter()
    route = request.match_info.route.resource
    pattern = f"{request.method} {route.canonical if route is not None else '(no route)'}"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    except Exception as error:
        log.error("http request failed", path=pattern, exc_info=error)
        raise web.HTTPInternalServerError(text="internal error, see the engine's log") from None
    finally:
        log.debug(
            "http request",
            path=pattern,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )


def json_error(status: int, error: str, detail: str, **extra: str) -> web.Response:
    """An error of the enrichment API: `{"error": code, "detail": text, ...}`."""
    return web.json_response({"error": error, "detail": detail, **extra}, status=status)


def json_errors(prefix: str) -> Middleware:
    """aiohttp's own refusals under `prefix` (413 body too large, 405 wrong method, 404) in
    the API's JSON form rather than plain text: the status's reason as the code
    (`method_not_allowed`), its `Allow` header kept."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(prefix):
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPError as error:
            code = error.reason.lower().replace(" ", "_")
            response = json_error(error.status, code, error.text or "")
            if "Allow" in error.headers:
                response.headers["Allow"] = error.headers["Allow"]
            return response

    return middleware


class HttpServer:
    """Serves `app` on `[http] listen`, with TLS when `[http.tls]` is set, at most `cap`
    connections at once."""

    def __init__(
        self, settings: HttpSettings, app: web.Application, cap: int, metrics: EngineMetrics
    ) -> None:
        self.settings = settings
        self.app = app
        self.cap = cap
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self._connections: Connections | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when `listen` asked for port 0)."""
        assert self._runner is not None
        host, port = self._runner.addresses[0][:2]
        return host, port

    @property
    def bound(self) -> bool:
        return self._runner is not None and bool(self._runner.addresses)

    async def start(self) -> None:
        address = parse_address(self.settings.listen)
        assert address is not None
        context = server_context(self.settings.tls) if self.settings.tls else None
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        assert self._runner.server is not None
        self._connections = Connections(
            self.settings, self.cap, self._runner.server, context, self._metrics
        )
        await _Site(self._runner, address, self._connections).start()
        host, port = self.address
        log.info(
            "http listener ready",
            listen=f"{host}:{port}",
            tls="on" if context else "off",
            max_connections=self.cap,
        )
        if self.cap < self.settings.max_connections:
            log.warning(
                f"[http] max_connections lowered to {self.cap}: the open-file limit leaves no "
                f"more once reserved_fds ({self.settings.reserved_fds}) are set aside",
                code="max_connections",
            )
        if context is None and not is_loopback_host(address[0]):
            log.warning(
                "HTTP without TLS beyond loopback: console passwords and cookies travel in "
                "clear; set [http.tls] or listen on 127.0.0.1 behind a TLS proxy",
                listen=f"{host}:{port}",
            )
        variable = self.settings.metrics_token_env
        if variable is not None and configured_token(variable) is None:
            log.warning(
                f"[http] metrics_token_env: {variable} is empty; every scrape is refused",
                code="metrics_token_env",
            )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._connections is not None:
            self._connections.abort_all()


class _Site(web.BaseSite):
    """A TCP site whose connections `Connections` makes (TLS included: it starts TLS on each
    connection itself, so that a handshake counts against the cap)."""

    __slots__ = ("_address", "_connections")

    def __init__(
        self, runner: web.AppRunner, address: tuple[str, int], connections: Connections
    ) -> None:
        super().__init__(runner)
        self._address = address
        self._connections = connections

    @property
    def name(self) -> str:
        host, port = self._address
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._connections, *self._address)
