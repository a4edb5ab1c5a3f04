"""An asyncio MLLP client: one message out, its acknowledgement back.

Used by delivery and replay. An `asyncio.Protocol`: the bytes received feed the sans-IO
decoder, and a complete frame answers the exchange waiting for it, with no reader task or
buffer copy in between. The ACK timeout costs no timer per message: one timer at a time,
which a message answered in time leaves to the next one's deadline. On a timeout or a
broken exchange the connection is closed before anything else is sent, so a late
acknowledgement can never be read as the answer to the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import cast

from engine.errors import EngineError
from engine.mllp.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    encode_frame,
)

CLOSE_WAIT_S = 5.0


class MllpClientError(EngineError):
    """The exchange failed; the connection has been closed."""


class AckTimeout(MllpClientError):
    """No acknowledgement in time: the outcome of the message is unknown."""


class MllpClient(asyncio.Protocol):
    """A connection to an MLLP server carrying one outstanding message at a time."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(max_frame_bytes)
        self._waiter: asyncio.Future[bytes] | None = None  # the exchange waiting for its ACK
        self._deadline = 0.0  # of that exchange, on the loop's clock
        self._ack_timeout_s = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._gone: asyncio.Future[None] = self._loop.create_future()  # connection lost
        self._peer_closed = False
        self.closed = False

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        connect_timeout_s: float = 10.0,
        local_address: tuple[str, int] | None = None,
    ) -> MllpClient:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout_s):
                transport, client = await loop.create_connection(
                    cls, host, port, local_addr=local_address
                )
        except TimeoutError:
            raise MllpClientError(
                f"connect to {host}:{port} timed out after {connect_timeout_s:g} s"
            ) from None
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise MllpClientError(f"connect to {host}:{port} failed: {reason}") from None
        if ssl_context is not None:
            # Its own step, so that a receiver that does not speak TLS is named as such
            # rather than as a connection that timed out.
            try:
                async with asyncio.timeout(connect_timeout_s):
                    secured = await loop.start_tls(
                        transport, client, ssl_context, server_hostname=server_hostname or host
                    )
            except TimeoutError:
                transport.close()
                raise MllpClientError(
                    f"TLS handshake with {host}:{port} failed: no answer within "
                    f"{connect_timeout_s:g} s (is the receiver serving TLS?)"
                ) from None
            except (OSError, ssl.SSLError) as error:
                transport.close()
                reason = (
                    getattr(error, "reason", None)
                    or getattr(error, "strerror", None)
                    or type(error).__name__
                )
                raise MllpClientError(
                    f"TLS handshake with {host}:{port} failed: {reason} (is the receiver "
                    "serving TLS, with a certificate this CA signs?)"
                ) from None
            client._transport = cast(asyncio.Transport, secured)
        return client

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._decoder.feed(data)
        if self._waiter is not None:
            self._answer()

    def eof_received(self) -> bool:
        self._peer_closed = True
        self._fail(MllpClientError("connection closed by peer before acknowledgement"))
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_closed = True
        if exc is None:
            self._fail(MllpClientError("connection closed by peer before acknowledgement"))
        else:
            self._fail(MllpClientError(f"connection lost: {type(exc).__name__}"))
        if not self._gone.done():
            self._gone.set_result(None)

    # -- exchanges -------------------------------------------------------------------------

    @property
    def peer_closed(self) -> bool:
        """The peer closed the connection while it sat idle: do not send on it."""
        return self._peer_closed

    async def exchange(self, payload: bytes, ack_timeout_s: float) -> bytes:
        """Send one message and return the payload of the next block received."""
        if self.closed:
            raise MllpClientError("connection is closed")
        if self._peer_closed or self._transport is None:
            await self.close()
            raise MllpClientError("connection closed by peer before acknowledgement")
        waiter = self._waiter = self._loop.create_future()
        self._ack_timeout_s = ack_timeout_s
        self._deadline = self._loop.time() + ack_timeout_s
        self._transport.write(encode_frame(payload))
        self._answer()  # a block that came while idle answers at once (and mismatches)
        if not waiter.done():
            self._watch()
        try:
            return await waiter
        except MllpClientError:
            await self.close()
            raise
        finally:
            self._waiter = None

    def _answer(self) -> None:
        """Hand the waiting exchange the next complete block, if one is in."""
        waiter = self._waiter
        while waiter is not None and not waiter.done():
            event = self._decoder.next_event()
            if isinstance(event, Frame):
                waiter.set_result(event.payload)
            elif isinstance(event, FrameTooLarge):
                waiter.set_exception(MllpClientError("acknowledgement larger than the frame limit"))
            elif event is NEED_DATA:  # junk between blocks is skipped
                return

    def _fail(self, error: MllpClientError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _watch(self) -> None:
        """Have a timer due no later than the waiting exchange's deadline."""
        if self._timer is not None and self._timer_at <= self._deadline:
            return  # an earlier deadline's timer: it looks again when due
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = self._deadline
        self._timer = self._loop.call_at(self._deadline, self._due)

    def _due(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # answered in time; the next exchange arms its own
        if self._loop.time() < self._deadline:
            self._watch()
        else:
            waiter.set_exception(AckTimeout(f"no acknowledgement within {self._ack_timeout_s:g} s"))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._gone), CLOSE_WAIT_S)
