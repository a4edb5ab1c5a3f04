"""The HTTP listener's connections, bounded beneath aiohttp: a cap and three deadlines.

aiohttp keeps a connection that sends nothing for an hour, and one that sends half a
request's head or trickles a body for ever; each holds a file descriptor, and enough of
them leave none for the MLLP listeners. Here every connection counts against
`max_connections` from its accept (its TLS handshake included): beyond, a new one is closed
at once. Its first request's head must arrive within `header_timeout_s` of its opening (the
TLS handshake included), a later one's within `header_timeout_s` of its first byte; once
answered, a connection that sends no new request (or does not read the answer) for
`idle_timeout_s` is closed; a body must arrive within `body_timeout_s` of its head, read by
`bounded_requests` before the handler runs. A connection closed for a timeout is aborted:
no answer is owed to a peer that does not send, and a reset frees the descriptor at once.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler

from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics
from engine.base.shortage import Shortage
from engine.config.settings import HttpSettings

FULL_QUIET_S = 60.0  # a flood at the cap is logged again after a quiet minute
HEADER_TIMEOUT = "header_timeout"
IDLE_TIMEOUT = "idle_timeout"
BODY_TIMEOUT = "body_timeout"
log = get_logger("engine.http")


class Connections:
    """The listener's protocol factory: each connection it makes is counted and timed, and
    hands its bytes to the protocol aiohttp makes (`inner`)."""

    def __init__(
        self,
        settings: HttpSettings,
        cap: int,
        inner: Callable[[], asyncio.Protocol],
        tls: ssl.SSLContext | None,
        metrics: EngineMetrics,
    ) -> None:
        self.settings = settings
        self.cap = cap
        self.inner = inner
        self.tls = tls
        self._metrics = metrics
        self._open: set[Connection] = set()
        self._full = Shortage(FULL_QUIET_S)

    def __call__(self) -> Connection:
        return Connection(self)

    def admit(self, connection: Connection) -> bool:
        if len(self._open) >= self.cap:
            self.closed("max_connections")
            if self._full.refused():
                log.warning(
                    "http connections at max_connections: new ones are closed at once",
                    count=self.cap,
                )
            return False
        self._open.add(connection)
        self._metrics.http_connections.set(len(self._open))
        return True

    def release(self, connection: Connection) -> None:
        self._open.discard(connection)
        self._metrics.http_connections.set(len(self._open))

    def closed(self, reason: str) -> None:
        self._metrics.http_connection_closed(reason)

    def abort_all(self) -> None:
        """Close what aiohttp's shutdown does not know of (TLS handshakes in progress)."""
        for connection in list(self._open):
            connection.abort()


class Connection(asyncio.Protocol):
    """One connection: its deadline, and aiohttp's protocol once TLS (if any) is up."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiting = ""  # the deadline running: HEADER_TIMEOUT, IDLE_TIMEOUT, or none
        self._handshake: asyncio.Task[None] | None = None
        self._ended_already = False
        self._early: list[bytes] = []  # bytes decrypted before `start_tls` returned

    @property
    def body_timeout_s(self) -> float:
        return self._connections.settings.body_timeout_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if not self._connections.admit(self):
            self._transport.abort()
            return
        self._deadline(HEADER_TIMEOUT)
        if self._connections.tls is None:
            self._serve(self._transport)
        else:
            self._handshake = asyncio.create_task(self._start_tls(self._transport))

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        assert self._connections.tls is not None
        loop = asyncio.get_running_loop()
        try:
            secured = await loop.start_tls(transport, self, self._connections.tls, server_side=True)
        except OSError:  # ssl.SSLError, a reset, or the header deadline's abort
            if self._waiting:  # not the deadline: it counted itself
                self._connections.closed("tls_handshake_failed")
            transport.abort()
            self._ended()
            return
        assert secured is not None
        self._serve(secured)

    def _serve(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._inner = self._connections.inner()
        self._inner.connection_made(transport)
        for data in self._early:
            self._inner.data_received(data)
        self._early.clear()

    def data_received(self, data: bytes) -> None:
        if self._waiting == IDLE_TIMEOUT:  # a new request begins
            self._deadline(HEADER_TIMEOUT)
        if self._inner is None:  # TLS is up, but `start_tls` has not returned yet
            self._early.append(data)
        else:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)
        self._ended()

    def request_started(self) -> None:
        """The request's head has arrived: aiohttp runs it."""
        self._cancel()

    def request_ended(self) -> None:
        """The handler answered: the answer is written, then a next request may come."""
        self._deadline(IDLE_TIMEOUT)

    def expired(self, reason: str) -> None:
        self._waiting = ""
        self._connections.closed(reason)
        self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _deadline(self, reason: str) -> None:
        self._cancel()
        if self._ended_already:  # a handler that outlived its connection
            return
        settings = self._connections.settings
        delay = settings.header_timeout_s if reason == HEADER_TIMEOUT else settings.idle_timeout_s
        self._timer = asyncio.get_running_loop().call_later(delay, self.expired, reason)
        self._waiting = reason

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting = ""

    def _ended(self) -> None:
        self._ended_already = True
        self._cancel()
        self._connections.release(self)


@web.middleware
async def bounded_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stop the head's deadline, read the body within `body_timeout_s` (else the connection
    is aborted), and start the idle deadline once answered."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if not isinstance(connection, Connection):  # the client has gone already
        raise web.HTTPBadRequest(text="connection closed")
    connection.request_started()
    try:
        if request.can_read_body:
            try:
                async with asyncio.timeout(connection.body_timeout_s):
                    await request.read()
            except TimeoutError:
                connection.expired(BODY_TIMEOUT)
                raise web.HTTPRequestTimeout(text="request body too slow") from None
        return await handler(request)
    finally:
        connection.request_ended()
