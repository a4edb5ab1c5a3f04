"""The asyncio MLLP listener: a thin socket loop around the sans-IO codec and the intake.

One task per connection reads, feeds the decoder and answers each block in order. Every
way out of a connection is bounded: an idle connection is closed after `idle_timeout_s`,
a block not complete `frame_timeout_s` after its first byte (however slowly it trickles
in), an ACK the peer does not read within `frame_timeout_s` resets its connection (and the
next block is not read before the ACK has left), an oversize block is answered and
skipped, EOF mid-block closes quietly, and on shutdown connections are closed at once
except one busy storing a message, which finishes that message first.

Who gets a slot at `max_connections` is `engine.inbound.slots`'s decision: connections that
complete blocks keep theirs. What the listener refuses, displaces or discards is counted in
the metrics and said by `engine.inbound.incident_log`, in a bounded number of lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics
from engine.config.settings import RouteSettings, parse_address
from engine.hl7.ack import Outcome
from engine.inbound.incident_log import IncidentLog
from engine.inbound.intake import Intake
from engine.inbound.slots import Admission, Phase, Slot
from engine.inbound.traffic_log import TrafficLog
from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, FrameTooLarge, Junk, encode_frame

READ_SIZE = 65536
DISCARD_LOG_INTERVAL_S = 1.0
ACK_NOT_READ = "ACK not read"
FRAME_TIMEOUT = "frame timeout"
IDLE_TIMEOUT = "idle timeout"
_LINGER_NONE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close resets the connection
# Why the engine closed a connection, as its metric and incident label.
_TIMEOUTS = {
    FRAME_TIMEOUT: "frame_timeout",
    IDLE_TIMEOUT: "idle_timeout",
    ACK_NOT_READ: "ack_timeout",
}
_REFUSALS = {
    "accept_rate": "max_accepts_per_s reached for this source address",
    "max_connections_per_address": "max_connections_per_address reached, none displaceable",
    "max_connections": "max_connections reached, none displaceable",
}
log = get_logger("engine.inbound.listener")


@dataclass(eq=False)
class _Connection:
    peer: str
    task: asyncio.Task[None]
    slot: Slot
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
        self._connections: dict[Slot, _Connection] = {}
        self._admission = Admission(
            route.max_connections,
            route.max_connections_per_address or route.max_connections,
            route.max_accepts_per_s,
            route.frame_timeout_s,
            clock,
        )
        self._stopping = False
        self._traffic = TrafficLog(route.name)
        self._incidents = IncidentLog(route.name)
        self._summaries: list[asyncio.Task[None]] = []
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
        """Connections holding a slot now."""
        return len(self._admission)

    def census(self) -> dict[str, int]:
        """Connections by what they do, as the admission policy sees them (the console)."""
        return self._admission.census()

    def adopt(self, route: RouteSettings, intake: Intake) -> None:
        """Serve a reloaded route's new settings and steps from the next message on, the
        socket and its open connections kept (`engine.app.reload.keeps_socket` says when):
        a message being handled finishes with the intake it started with."""
        self.route = route
        self._intake = intake

    async def start(self) -> None:
        address = parse_address(self.route.listen)
        assert address is not None
        # TLS is started per connection (not by the server) so that the allow-list applies
        # before a handshake and a failed handshake is logged with the peer's address.
        self._server = await asyncio.start_server(
            self._serve, address[0], address[1], limit=READ_SIZE
        )
        self._summaries = [
            asyncio.create_task(self._traffic.run(), name=f"{self.route.name} traffic"),
            asyncio.create_task(self._incidents.run(), name=f"{self.route.name} incidents"),
        ]
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
        """Stop accepting, close connections, let those storing a message finish it."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            # A displaced one is already cancelled: cancelling it again would cut its close.
            if connection.slot.phase is not Phase.HANDLING and not connection.displaced:
                connection.task.cancel()
        tasks = [connection.task for connection in self._connections.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for summaries in self._summaries:
            summaries.cancel()
        await asyncio.gather(*self._summaries, return_exceptions=True)
        self._traffic.flush()
        self._incidents.flush()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        host = peername[0] if peername else ""
        peer = f"{host}:{peername[1]}" if peername else "?"
        refusal = self._refusal(host)
        if refusal:
            self._refused(peer, host, *refusal)
            await _close(writer)
            return
        decision = self._admission.admit(
            host, Phase.OPENING if self._ssl is not None else Phase.IDLE
        )
        if decision.slot is None:
            self._refused(peer, host, decision.refused, _REFUSALS[decision.refused])
            await _close(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(peer, task, decision.slot)
        self._connections[decision.slot] = connection
        if decision.displaced is not None:
            self._displace(decision.displaced, decision.displaced_as)
        try:
            if self._ssl is not None:
                failure = await self._start_tls(writer)
                if failure:
                    self._refused(peer, host, "tls_handshake", failure)
                    return
            if self._incidents.detail("connection"):
                log.info("connection opened", route=self.route.name, peer=peer)
            reason = await self._conversation(connection, reader, writer)
            timeout = _TIMEOUTS.get(reason)
            if timeout:
                self._metrics.mllp_connection_closed(self.route.name, timeout)
                self._incidents.count(f"closed_{timeout}", host)
            if self._incidents.detail("connection"):
                log.info(
                    "connection closed",
                    route=self.route.name,
                    peer=peer,
                    reason=reason,
                    count=connection.handled,
                )
        except asyncio.CancelledError:
            if not connection.displaced and self._incidents.detail("connection"):
                log.info(
                    "connection closed", route=self.route.name, peer=peer, reason="engine stopping"
                )
        finally:
            self._admission.release(connection.slot)
            # Closed while its ACK waited (not read in time, or displaced): reset it.
            await _close(writer, reset=connection.slot.phase is Phase.WRITING)
            self._connections.pop(connection.slot, None)  # `stop` waits until it is closed

    def _refusal(self, host: str) -> tuple[str, str] | None:
        """(metric reason, text) when the peer is refused before the admission policy."""
        if self._stopping:
            return "stopping", "engine stopping"
        if self._allow:
            try:
                address = ipaddress.ip_address(host.split("%")[0])
            except ValueError:
                return "allow_list", "unknown source address"
            if address.version == 6 and address.ipv4_mapped:
                address = address.ipv4_mapped
            if not any(address in network for network in self._allow):
                return "allow_list", "source address not in allow list"
        return None

    def _refused(self, peer: str, host: str, reason: str, text: str) -> None:
        self._metrics.mllp_connection_refused(self.route.name, reason)
        self._incidents.count(f"refused_{reason}", host)
        if self._incidents.detail("refused"):
            log.warning("connection refused", route=self.route.name, peer=peer, reason=text)

    def _displace(self, slot: Slot, as_class: str) -> None:
        """Close the connection the policy displaced for a newcomer."""
        victim = self._connections.get(slot)
        if victim is None:
            return
        victim.displaced = True
        victim.task.cancel()
        self._metrics.mllp_connection_closed(self.route.name, f"displaced_{as_class}")
        self._incidents.count(f"displaced_{as_class}", victim.slot.address)
        if self._incidents.detail("displaced"):
            log.warning(
                "connection closed",
                route=self.route.name,
                peer=victim.peer,
                reason=f"displaced ({as_class}) by a new connection at the limit",
                count=victim.handled,
            )

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
        slot = connection.slot
        # The next block is read once the ACK has left: a peer that does not read its
        # ACKs is seen at once (and stops being read) instead of after 64 KB of them.
        writer.transport.set_write_buffer_limits(high=0)
        block_deadline: float | None = None  # frame_timeout_s from the block's first byte
        received = 0  # the last read's size: the bytes a block started with
        while not self._stopping:
            event = decoder.next_event()
            if event is NEED_DATA:
                if decoder.in_frame:
                    if block_deadline is None:
                        block_deadline = loop.time() + self.route.frame_timeout_s
                        slot.block_started(self._clock(), received)
                    deadline = block_deadline
                else:
                    block_deadline = None
                    slot.phase = Phase.IDLE
                    deadline = loop.time() + self.route.idle_timeout_s
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(READ_SIZE)
                except TimeoutError:
                    return FRAME_TIMEOUT if decoder.in_frame else IDLE_TIMEOUT
                if not data:
                    return "end of stream inside a block" if decoder.in_frame else "closed by peer"
                received = len(data)
                if slot.phase is Phase.RECEIVING:
                    slot.block_bytes += received
                decoder.feed(data)
                continue
            if isinstance(event, Junk):
                self._metrics.mllp_junk_bytes(self.route.name, event.size)
                self._incidents.count("junk_bytes", connection.slot.address, event.size)
                self._log_discarded(connection, discarded.add(event.size))
                continue
            self._log_discarded(connection, discarded.take())  # at most once per block
            slot.phase = Phase.HANDLING
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
                slot.phase = Phase.WRITING
                try:
                    async with asyncio.timeout(self.route.frame_timeout_s):
                        await writer.drain()
                except TimeoutError:
                    return ACK_NOT_READ
            if not decoder.in_frame:  # the block is complete (an oversize one may go on)
                block_deadline = None
                slot.completed(self._clock())
            connection.handled += 1
            elapsed = time.perf_counter() - started
            self._metrics.message_answered(self.route.name, verdict.ack_code, elapsed)
            self._traffic.count(verdict.outcome.value, verdict.duplicate)
            # Each message at debug (TrafficLog says the counts at info); a refusal is a
            # warning, for the first few of each interval (then counted).
            refused = verdict.outcome is not Outcome.ACCEPTED
            if refused:
                self._incidents.count("messages_refused", connection.slot.address)
                # A refusal is answered without a pause: a read full of garbage blocks
                # would hold the loop, and every other sender, until its last block.
                await asyncio.sleep(0)
            if refused and not self._incidents.detail("message"):
                continue
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
        if size and self._incidents.detail("junk"):
            log.warning(
                "bytes outside a block discarded",
                route=self.route.name,
                peer=connection.peer,
                size=size,
            )


async def _close(writer: asyncio.StreamWriter, reset: bool = False) -> None:
    """Close the connection; with `reset`, at once, dropping what it has not read.

    For a peer that does not read its ACKs: a close sends its FIN after the bytes it has
    not read, so it never sees one, and the socket outlives the connection in the kernel.
    """
    if reset:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NONE)
        writer.transport.abort()
    else:
        writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2)
