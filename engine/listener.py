"""The asyncio MLLP listener: a thin socket loop around the sans-IO codec and the intake.

One task per connection reads, feeds the decoder and answers each block in order. Every
way out of a connection is bounded: an idle connection is closed after `idle_timeout_s`,
a block not complete `frame_timeout_s` after its first byte (however slowly it trickles
in), an oversize block is answered and skipped, EOF mid-block closes quietly, and on
shutdown idle connections are closed at once while a connection busy with a message
finishes that message first.

Connections that do nothing cannot lock senders out: at `max_connections` (TLS handshakes
in progress count), a new connection displaces the one idle the longest, with no block in
progress; only when none is idle is it refused. Bytes outside blocks are logged by count,
at most once per block or per second on a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from engine.config import RouteSettings, parse_address
from engine.hl7.ack import Outcome
from engine.intake import Intake
from engine.logs import get_logger
from engine.metrics import EngineMetrics
from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, FrameTooLarge, Junk, encode_frame
from engine.traffic_log import TrafficLog

READ_SIZE = 65536
DISCARD_LOG_INTERVAL_S = 1.0
log = get_logger("engine.listener")


class _State(Enum):
    HANDSHAKE = "handshake"  # TLS being negotiated: counts against the limit
    IDLE = "idle"  # between blocks: the one idle the longest may be displaced
    RECEIVING = "receiving"  # a block has started: bounded by frame_timeout_s
    HANDLING = "handling"  # a block is being stored and answered: finishes even on stop


@dataclass(eq=False)
class _Connection:
    peer: str
    task: asyncio.Task[None]
    state: _State
    idle_since: float
    handled: int = 0
    displaced: bool = False


class DiscardCounter:
    """Bytes a connection sent outside blocks, to be logged by count only and sparingly.

    Each discarded run of bytes would otherwise be one warning line: 40 KB of start bytes
    inside an unfinished block wrote 20,000 lines. The count is reported when a block
    completes, when the connection ends, and otherwise once a second at most.
    """

    def __init__(
        self, clock: Callable[[], float], interval_s: float = DISCARD_LOG_INTERVAL_S
    ) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._pending = 0
        self._since = 0.0

    def add(self, size: int) -> int:
        """Count `size` bytes; returns the total to log now, or 0."""
        now = self._clock()
        if not self._pending:
            self._since = now
        self._pending += size
        return self.take() if now - self._since >= self._interval_s else 0

    def take(self) -> int:
        """The bytes counted and not yet logged (a block ended, or the connection did)."""
        total, self._pending = self._pending, 0
        return total


class Listener:
    """Serves one route's MLLP listener."""

    def __init__(
        self,
        route: RouteSettings,
        intake: Intake,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.route = route
        self._intake = intake
        self._ssl = ssl_context
        self._clock = clock
        self._metrics = metrics or EngineMetrics()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._stopping = False
        self._traffic = TrafficLog(route.name)
        self._summaries: asyncio.Task[None] | None = None
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
        self._summaries = asyncio.create_task(
            self._traffic.run(), name=f"{self.route.name} traffic"
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
            if connection.state is not _State.HANDLING:
                connection.task.cancel()
        tasks = [connection.task for connection in self._connections]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._summaries is not None:
            self._summaries.cancel()
            await asyncio.gather(self._summaries, return_exceptions=True)
        self._traffic.flush()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        task = asyncio.current_task()
        assert task is not None
        first_state = _State.HANDSHAKE if self._ssl is not None else _State.IDLE
        connection = _Connection(peer, task, first_state, self._clock())
        refusal = self._refusal(peername[0] if peername else "") or self._admit(connection)
        if refusal:
            log.warning("connection refused", route=self.route.name, peer=peer, reason=refusal)
            await _close(writer)
            return
        try:
            if self._ssl is not None:
                failure = await self._start_tls(writer)
                if failure:
                    log.warning(
                        "connection refused", route=self.route.name, peer=peer, reason=failure
                    )
                    return
            log.info("connection opened", route=self.route.name, peer=peer)
            reason = await self._conversation(connection, reader, writer)
            log.info(
                "connection closed",
                route=self.route.name,
                peer=peer,
                reason=reason,
                count=connection.handled,
            )
        except asyncio.CancelledError:
            if not connection.displaced:  # displaced: the line was written by _admit
                log.info(
                    "connection closed", route=self.route.name, peer=peer, reason="engine stopping"
                )
        finally:
            self._connections.discard(connection)
            await _close(writer)

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
        return ""

    def _admit(self, connection: _Connection) -> str:
        """Count the connection against `max_connections`; at the limit, displace the
        connection idle the longest (no block in progress, TLS up), else refuse."""
        if len(self._connections) >= self.route.max_connections:
            idle = [other for other in self._connections if other.state is _State.IDLE]
            if not idle:
                return f"max_connections ({self.route.max_connections}) reached, none idle"
            victim = min(idle, key=lambda other: other.idle_since)
            victim.displaced = True
            self._connections.discard(victim)
            victim.task.cancel()
            log.warning(
                "connection closed",
                route=self.route.name,
                peer=victim.peer,
                reason=f"displaced: idle the longest at max_connections "
                f"({self.route.max_connections}), a new connection came",
                count=victim.handled,
            )
        self._connections.add(connection)
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

    async def _conversation(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> str:
        """Why the connection ended; the bytes discarded on it are logged whatever the end."""
        discarded = DiscardCounter(self._clock)
        try:
            return await self._converse(connection, reader, writer, discarded)
        except (ConnectionError, ssl.SSLError, OSError) as error:
            return f"connection error: {type(error).__name__}"
        except Exception as error:  # a bug: close this connection, keep the listener serving
            log.error(
                "connection handler failed",
                route=self.route.name,
                peer=connection.peer,
                exc_info=error,
            )
            return "internal error"
        finally:
            self._log_discarded(connection, discarded.take())

    async def _converse(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        discarded: DiscardCounter,
    ) -> str:
        decoder = FrameDecoder(self.route.max_frame_bytes)
        loop = asyncio.get_running_loop()
        block_deadline: float | None = None  # frame_timeout_s from the block's first byte
        while not self._stopping:
            event = decoder.next_event()
            if event is NEED_DATA:
                if decoder.in_frame:
                    if block_deadline is None:
                        block_deadline = loop.time() + self.route.frame_timeout_s
                    connection.state = _State.RECEIVING
                    deadline = block_deadline
                else:
                    block_deadline = None
                    if connection.state is not _State.IDLE:
                        connection.state = _State.IDLE
                        connection.idle_since = self._clock()
                    deadline = loop.time() + self.route.idle_timeout_s
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    return "frame timeout" if decoder.in_frame else "idle timeout"
                if not data:
                    return "end of stream inside a block" if decoder.in_frame else "closed by peer"
                decoder.feed(data)
                continue
            if isinstance(event, Junk):
                self._log_discarded(connection, discarded.add(event.size))
                continue
            self._log_discarded(connection, discarded.take())  # at most once per block
            connection.state = _State.HANDLING
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
            if not decoder.in_frame:  # the block is complete (an oversize one may go on)
                block_deadline = None
            connection.handled += 1
            elapsed = time.perf_counter() - started
            self._metrics.message_answered(self.route.name, verdict.ack_code, elapsed)
            self._traffic.count(verdict.outcome.value, verdict.duplicate)
            # Each message at debug (TrafficLog says the counts at info); a refusal always.
            refused = verdict.outcome is not Outcome.ACCEPTED
            (log.warning if refused else log.debug)(
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

    def _log_discarded(self, connection: _Connection, size: int) -> None:
        if size:
            log.warning(
                "bytes outside a block discarded",
                route=self.route.name,
                peer=connection.peer,
                size=size,
            )


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2)
