"""The asyncio MLLP listener: a thin socket loop around the sans-IO codec and the intake.

One task per connection reads, feeds the decoder and answers each block in order. Every
way out of a connection is bounded: an idle connection is closed after `idle_timeout_s`,
a block started but not finished after `frame_timeout_s`, an oversize block is answered
and skipped, EOF mid-block closes quietly, and on shutdown idle connections are closed at
once while a connection busy with a message finishes that message first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from dataclasses import dataclass, field

from engine.config import RouteSettings, parse_address
from engine.intake import Intake
from engine.logs import get_logger
from engine.metrics import EngineMetrics
from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, FrameTooLarge, Junk, encode_frame

READ_SIZE = 65536
log = get_logger("engine.listener")


@dataclass(eq=False)
class _Connection:
    peer: str
    task: asyncio.Task[None]
    busy: bool = False
    handled: int = field(default=0)


class Listener:
    """Serves one route's MLLP listener."""

    def __init__(
        self,
        route: RouteSettings,
        intake: Intake,
        ssl_context: ssl.SSLContext | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.route = route
        self._intake = intake
        self._ssl = ssl_context
        self._metrics = metrics or EngineMetrics()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._stopping = False
        self._allow = [ipaddress.ip_network(entry, strict=False) for entry in route.allow]

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when the route asked for port 0)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def bound(self) -> bool:
        """True while the listener accepts connections."""
        return self._server is not None and self._server.is_serving()

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    async def start(self) -> None:
        address = parse_address(self.route.listen)
        assert address is not None
        # TLS is started per connection (not by the server) so that the allow-list applies
        # before a handshake and a failed handshake is logged with the peer's address.
        self._server = await asyncio.start_server(
            self._serve, address[0], address[1], limit=READ_SIZE
        )
        host, port = self.address
        log.info(
            "listener ready",
            route=self.route.name,
            listen=f"{host}:{port}",
            tls="mutual"
            if self._ssl and self._ssl.verify_mode == ssl.CERT_REQUIRED
            else ("on" if self._ssl else "off"),
        )

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, close idle connections, let busy ones finish their message."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if not connection.busy:
                connection.task.cancel()
        tasks = [connection.task for connection in self._connections]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        refusal = self._refusal(peername[0] if peername else "")
        if not refusal and self._ssl is not None:
            refusal = await self._start_tls(writer)
        if refusal:
            log.warning("connection refused", route=self.route.name, peer=peer, reason=refusal)
            await _close(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(peer, task)
        self._connections.add(connection)
        log.info("connection opened", route=self.route.name, peer=peer)
        reason = "closed by peer"
        try:
            reason = await self._converse(connection, reader, writer)
        except asyncio.CancelledError:
            reason = "engine stopping"
        except (ConnectionError, ssl.SSLError, OSError) as error:
            reason = f"connection error: {type(error).__name__}"
        except Exception as error:  # a bug: close this connection, keep the listener serving
            reason = "internal error"
            log.error("connection handler failed", route=self.route.name, peer=peer, exc_info=error)
        finally:
            self._connections.discard(connection)
            await _close(writer)
            log.info(
                "connection closed",
                route=self.route.name,
                peer=peer,
                reason=reason,
                count=connection.handled,
            )

    def _refusal(self, host: str) -> str:
        if self._stopping:
            return "engine stopping"
        if self._allow:
            try:
                address = ipaddress.ip_address(host.split("%")[0])
            except ValueError:
                return "unknown source address"
            if address.version == 6 and address.ipv4_mapped:
                address = address.ipv4_mapped
            if not any(address in network for network in self._allow):
                return "source address not in allow list"
        if len(self._connections) >= self.route.max_connections:
            return f"max_connections ({self.route.max_connections}) reached"
        return ""

    async def _start_tls(self, writer: asyncio.StreamWriter) -> str:
        """Upgrade the connection; returns why it failed, or '' once TLS is up."""
        assert self._ssl is not None
        try:
            async with asyncio.timeout(self.route.frame_timeout_s):
                await writer.start_tls(self._ssl)
        except TimeoutError:
            return "TLS handshake timed out"
        except (ssl.SSLError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", None) or type(error).__name__
            return f"TLS handshake failed: {reason}"
        return ""

    async def _converse(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> str:
        decoder = FrameDecoder(self.route.max_frame_bytes)
        while not self._stopping:
            event = decoder.next_event()
            if event is NEED_DATA:
                in_frame = decoder.in_frame
                timeout = self.route.frame_timeout_s if in_frame else self.route.idle_timeout_s
                try:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    return "frame timeout" if in_frame else "idle timeout"
                if not data:
                    return "end of stream inside a block" if decoder.in_frame else "closed by peer"
                decoder.feed(data)
                continue
            if isinstance(event, Junk):
                log.warning(
                    "bytes outside a block discarded",
                    route=self.route.name,
                    peer=connection.peer,
                    size=event.size,
                )
                continue
            connection.busy = True
            started = time.perf_counter()
            if isinstance(event, Frame):
                verdict = await self._intake.receive(event.payload, connection.peer)
                size = len(event.payload)
            else:
                assert isinstance(event, FrameTooLarge)
                verdict = self._intake.too_large(event.head, event.size)
                size = event.size
            if verdict.reply is not None:
                writer.write(encode_frame(verdict.reply))
                await writer.drain()
            connection.busy = False
            connection.handled += 1
            elapsed = time.perf_counter() - started
            self._metrics.message_answered(self.route.name, verdict.ack_code, elapsed)
            log.info(
                "message handled",
                route=self.route.name,
                peer=connection.peer,
                control_id=verdict.control_id,
                message_type=verdict.message_type,
                size=size,
                outcome=verdict.outcome.value,
                reason=verdict.reason or None,
                message_id=verdict.message_id,
                status="duplicate" if verdict.duplicate else None,
                duration_ms=round(elapsed * 1000, 3),
            )
        return "engine stopping"


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2)
