"""An asyncio MLLP client: one message out, its acknowledgement back.

Used by delivery and replay. On a timeout or a broken exchange the connection is closed
before anything else is sent, so a late acknowledgement can never be read as the answer to
the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from engine.errors import EngineError
from engine.mllp.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    encode_frame,
)

READ_SIZE = 65536


class MllpClientError(EngineError):
    """The exchange failed; the connection has been closed."""


class AckTimeout(MllpClientError):
    """No acknowledgement in time: the outcome of the message is unknown."""


class MllpClient:
    """A connection to an MLLP server carrying one outstanding message at a time."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_frame_bytes)
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
    ) -> MllpClient:
        try:
            async with asyncio.timeout(connect_timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
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
                    await writer.start_tls(ssl_context, server_hostname=server_hostname or host)
            except TimeoutError:
                writer.close()
                raise MllpClientError(
                    f"TLS handshake with {host}:{port} failed: no answer within "
                    f"{connect_timeout_s:g} s (is the receiver serving TLS?)"
                ) from None
            except (OSError, ssl.SSLError) as error:
                writer.close()
                reason = (
                    getattr(error, "reason", None)
                    or getattr(error, "strerror", None)
                    or type(error).__name__
                )
                raise MllpClientError(
                    f"TLS handshake with {host}:{port} failed: {reason} (is the receiver "
                    "serving TLS, with a certificate this CA signs?)"
                ) from None
        return cls(reader, writer)

    @property
    def peer_closed(self) -> bool:
        """The peer closed the connection while it sat idle: do not send on it."""
        return self._reader.at_eof()

    async def exchange(self, payload: bytes, ack_timeout_s: float) -> bytes:
        """Send one message and return the payload of the next block received."""
        if self.closed:
            raise MllpClientError("connection is closed")
        try:
            self._writer.write(encode_frame(payload))
            async with asyncio.timeout(ack_timeout_s):
                await self._writer.drain()
                return await self._read_frame()
        except TimeoutError:
            await self.close()
            raise AckTimeout(f"no acknowledgement within {ack_timeout_s:g} s") from None
        except (OSError, ssl.SSLError, MllpClientError) as error:
            await self.close()
            if isinstance(error, MllpClientError):
                raise
            raise MllpClientError(f"connection lost: {type(error).__name__}") from None

    async def _read_frame(self) -> bytes:
        while True:
            event = self._decoder.next_event()
            if isinstance(event, Frame):
                return event.payload
            if isinstance(event, FrameTooLarge):
                raise MllpClientError("acknowledgement larger than the frame limit")
            if event is NEED_DATA:
                data = await self._reader.read(READ_SIZE)
                if not data:
                    raise MllpClientError("connection closed by peer before acknowledgement")
                self._decoder.feed(data)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 5)
