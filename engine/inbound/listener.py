"""The asyncio MLLP listener: a server of `engine.inbound.connection`s, one per sender.

A connection answers the blocks of each read in one pass, in order, once the messages among
them are committed. Every way out of a connection is bounded: an idle connection is closed
after `idle_timeout_s`, a block not complete `frame_timeout_s` after its first byte (however
slowly it trickles in), an ACK the peer does not read within `frame_timeout_s` resets its
connection (and the next block is not read before the ACK has left), an oversize block is
answered and skipped, EOF mid-block closes quietly, and on shutdown connections are closed
at once except those storing messages, which finish them first.

Who gets a slot at `max_connections` is `engine.inbound.slots`'s decision: connections that
complete blocks keep theirs. The allow-list applies before a TLS handshake, which is per
connection, after its admission. What the listener refuses, displaces or discards is
counted in the metrics and said by `engine.inbound.incident_log`, in a bounded number of
lines.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from collections.abc import Callable, Sequence

from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics
from engine.config.settings import RouteSettings, parse_address
from engine.hl7.ack import Outcome
from engine.inbound.connection import (
    ACK_NOT_READ,
    ENGINE_STOPPING,
    FRAME_TIMEOUT,
    IDLE_TIMEOUT,
    Connection,
)
from engine.inbound.incident_log import IncidentLog
from engine.inbound.intake import Intake, Verdict
from engine.inbound.slots import Admission, Phase, Slot
from engine.inbound.traffic_log import TrafficLog
from engine.mllp.codec import Frame, FrameTooLarge

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
        self.intake = intake
        self.tls = ssl_context
        self.clock = clock
        self.stopping = False
        self._metrics = metrics or EngineMetrics()
        self._server: asyncio.Server | None = None
        self._connections: dict[Slot, Connection] = {}
        self._admission = Admission(
            route.max_connections,
            route.max_connections_per_address or route.max_connections,
            route.max_accepts_per_s,
            route.frame_timeout_s,
            clock,
        )
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
        messages being handled finish with the intake they started with."""
        self.route = route
        self.intake = intake

    async def start(self) -> None:
        address = parse_address(self.route.listen)
        assert address is not None
        # TLS is started per connection (not by the server) so that the allow-list applies
        # before a handshake and a failed handshake is logged with the peer's address.
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), address[0], address[1])
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
            if self.tls and self.tls.verify_mode == ssl.CERT_REQUIRED
            else ("on" if self.tls else "off"),
        )

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, close connections, let those storing messages finish them."""
        self.stopping = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections.values()):
            assert connection.slot is not None
            if connection.slot.phase is not Phase.HANDLING:
                connection.close(ENGINE_STOPPING)
        waiting = [connection.done for connection in self._connections.values()]
        if waiting:
            await asyncio.wait(waiting, timeout=grace_s)
            for connection in list(self._connections.values()):
                connection.abort()
            await asyncio.gather(*waiting, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for summaries in self._summaries:
            summaries.cancel()
        await asyncio.gather(*self._summaries, return_exceptions=True)
        self._traffic.flush()
        self._incidents.flush()

    # -- what connections report -------------------------------------------------------

    def admit(self, connection: Connection, host: str) -> Slot | None:
        """The new connection's slot, or None when it is refused (and said so)."""
        refusal = self._refusal(host)
        if refusal:
            self._refused(connection.peer, host, *refusal)
            return None
        decision = self._admission.admit(
            host, Phase.OPENING if self.tls is not None else Phase.IDLE
        )
        if decision.slot is None:
            self._refused(connection.peer, host, decision.refused, _REFUSALS[decision.refused])
            return None
        self._connections[decision.slot] = connection
        if decision.displaced is not None:
            self._displace(decision.displaced, decision.displaced_as)
        return decision.slot

    def connection_opened(self, connection: Connection) -> None:
        if self._incidents.detail("connection"):
            log.info("connection opened", route=self.route.name, peer=connection.peer)

    def tls_refused(self, connection: Connection, failure: str) -> None:
        assert connection.slot is not None
        self._refused(connection.peer, connection.slot.address, "tls_handshake", failure)

    def connection_closed(self, connection: Connection, reason: str, quiet: bool) -> None:
        """Give its slot back; count and say why it closed (a displaced one is said by
        `_displace`, a refused one by `_refused`)."""
        slot = connection.slot
        assert slot is not None
        self._admission.release(slot)
        if quiet or connection.displaced:
            return
        timeout = _TIMEOUTS.get(reason)
        if timeout:
            self._metrics.mllp_connection_closed(self.route.name, timeout)
            self._incidents.count(f"closed_{timeout}", slot.address)
        if self._incidents.detail("connection"):
            log.info(
                "connection closed",
                route=self.route.name,
                peer=connection.peer,
                reason=reason,
                count=connection.handled,
            )

    def forget(self, connection: Connection) -> None:
        """The connection is gone and nothing of it runs any more."""
        if connection.slot is not None:
            self._connections.pop(connection.slot, None)

    def junk(self, connection: Connection, size: int) -> None:
        assert connection.slot is not None
        self._metrics.mllp_junk_bytes(self.route.name, size)
        self._incidents.count("junk_bytes", connection.slot.address, size)

    def log_discarded(self, connection: Connection, size: int) -> None:
        if size and self._incidents.detail("junk"):
            log.warning(
                "bytes outside a block discarded",
                route=self.route.name,
                peer=connection.peer,
                size=size,
            )

    def answered(
        self,
        connection: Connection,
        verdicts: Sequence[Verdict],
        blocks: Sequence[Frame | FrameTooLarge],
        elapsed: float,
    ) -> None:
        """Count what a pass answered; each message at debug (TrafficLog says the counts at
        info), a refusal as a warning for the first few of each interval (then counted)."""
        assert connection.slot is not None
        route = self.route.name
        debug: bool | None = None  # asked once: a line built and filtered out still costs
        for verdict, block in zip(verdicts, blocks, strict=True):
            self._metrics.message_answered(route, verdict.ack_code, elapsed)
            self._traffic.count(verdict.outcome.value, verdict.duplicate)
            if verdict.outcome is not Outcome.ACCEPTED:
                self._incidents.count("messages_refused", connection.slot.address)
                if self._incidents.detail("message"):
                    _log_message(log.warning, route, connection.peer, verdict, block, elapsed)
                continue
            if debug is None:
                debug = bool(log.is_enabled_for(logging.DEBUG))
            if debug:
                _log_message(log.debug, route, connection.peer, verdict, block, elapsed)

    # -- admission ----------------------------------------------------------------------

    def _refusal(self, host: str) -> tuple[str, str] | None:
        """(metric reason, text) when the peer is refused before the admission policy."""
        if self.stopping:
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
        victim.close(f"displaced ({as_class})")
        self._metrics.mllp_connection_closed(self.route.name, f"displaced_{as_class}")
        self._incidents.count(f"displaced_{as_class}", slot.address)
        if self._incidents.detail("displaced"):
            log.warning(
                "connection closed",
                route=self.route.name,
                peer=victim.peer,
                reason=f"displaced ({as_class}) by a new connection at the limit",
                count=victim.handled,
            )


def _log_message(
    write: Callable[..., None],
    route: str,
    peer: str,
    verdict: Verdict,
    block: Frame | FrameTooLarge,
    elapsed: float,
) -> None:
    write(
        "message handled",
        route=route,
        peer=peer,
        control_id=verdict.control_id,
        message_type=verdict.message_type,
        size=len(block.payload) if isinstance(block, Frame) else block.size,
        outcome=verdict.outcome.value,
        reason=verdict.reason or None,
        message_id=verdict.message_id,
        status="duplicate" if verdict.duplicate else None,
        duration_ms=round(elapsed * 1000, 3),
    )
