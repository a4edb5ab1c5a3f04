"""One MLLP connection: an `asyncio.Protocol` around the sans-IO codec and the intake.

The bytes of a read feed the decoder, and every block complete in it is handled in one
pass: refused ones are answered without the store, the others stored in one write, and the
answers leave in the blocks' order with one write once that write committed. No task and no
future per message, nor a task per read: a pass's write is answered from its callback
(`engine.inbound.intake.Storing`). Reading pauses until its answers have left (a peer that
does not read its ACKs is not read either). A pass handles at most `BLOCKS_PER_PASS` blocks
before the loop serves the other connections, so a read full of garbage blocks cannot hold
it.

Every way out is bounded by the connection's one timer, moved without being rescheduled
(it looks at the deadline when it fires): `idle_timeout_s` between blocks, `frame_timeout_s`
from a block's first byte (however slowly it trickles in) and from an ACK written and not
read (its connection is then reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from engine.base.logs import get_logger
from engine.config.settings import RouteSettings
from engine.inbound.intake import Intake, Storing, Verdict
from engine.inbound.slots import Phase, Slot
from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, FrameTooLarge, Junk, encode_frame

BLOCKS_PER_PASS = 32  # blocks handled before the loop serves the other connections
DISCARD_LOG_INTERVAL_S = 1.0
ACK_NOT_READ = "ACK not read"
FRAME_TIMEOUT = "frame timeout"
IDLE_TIMEOUT = "idle timeout"
ENGINE_STOPPING = "engine stopping"
TLS_SHUTDOWN_S = 2.0  # a closing TLS connection waits this long for the peer's close_notify
_LATE_S = 0.001  # a timer may fire this much before its deadline (millisecond clocks)
_LINGER_NONE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close resets the connection
log = get_logger("engine.inbound.listener")


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


class Owner(Protocol):
    """What a connection asks of the listener that accepted it (`engine.inbound.listener`):
    its route's settings and intake, admission, and where to say what happened."""

    route: RouteSettings
    intake: Intake
    tls: ssl.SSLContext | None
    clock: Callable[[], float]
    stopping: bool

    def admit(self, connection: Connection, host: str) -> Slot | None: ...
    def connection_opened(self, connection: Connection) -> None: ...
    def tls_refused(self, connection: Connection, failure: str) -> None: ...
    def connection_closed(self, connection: Connection, reason: str, quiet: bool) -> None: ...
    def forget(self, connection: Connection) -> None: ...
    def junk(self, connection: Connection, size: int) -> None: ...
    def log_discarded(self, connection: Connection, size: int) -> None: ...
    def answered(
        self,
        connection: Connection,
        verdicts: Sequence[Verdict],
        blocks: Sequence[Frame | FrameTooLarge],
        elapsed: float,
    ) -> None: ...


class Connection(asyncio.Protocol):
    """One sender's connection, from its admission to its close."""

    def __init__(self, listener: Owner) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        route = listener.route
        self._decoder = FrameDecoder(route.max_frame_bytes)
        self._discarded = DiscardCounter(listener.clock)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.slot: Slot | None = None
        self.handled = 0
        self.displaced = False
        self.done: asyncio.Future[None] = self._loop.create_future()  # closed, nothing pending
        self._closed = ""  # why, once closed
        self._lost = False
        self._task: asyncio.Task[None] | None = None  # the TLS handshake
        self._storing: Storing | None = None  # a pass's messages being stored
        self._pass_blocks: Sequence[Frame | FrameTooLarge] = ()  # the pass being stored
        self._started = 0.0  # when that pass started (perf_counter)
        self._busy = False  # a pass's answers have not left: no other pass may start
        self._more = False  # the last pass stopped at BLOCKS_PER_PASS
        self._write_paused = False
        self._received = 0  # the last read's size: the bytes a block started with
        self._block_deadline: float | None = None
        self._deadline: float | None = None  # the one timer's, None while storing
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        peername = transport.get_extra_info("peername")
        host = peername[0] if peername else ""
        self.peer = f"{host}:{peername[1]}" if peername else "?"
        self.slot = self._listener.admit(self, host)
        if self.slot is None:
            transport.close()
            self._lost = True
            self.done.set_result(None)
            return
        if self._listener.tls is None:
            # The next block is read once the ACK has left: a peer that does not read its
            # ACKs is seen at once (and stops being read) instead of after 64 KB of them.
            transport.set_write_buffer_limits(high=0)
            self._opened()
            return
        transport.pause_reading()  # the handshake reads first
        self._task = self._loop.create_task(self._handshake(transport, self._listener.tls))

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        assert self.slot is not None
        self._received = len(data)
        if self.slot.phase is Phase.RECEIVING:
            self.slot.block_bytes += len(data)
        self._decoder.feed(data)
        if not self._busy and self.slot.phase is not Phase.OPENING:
            self._pass()

    def eof_received(self) -> bool | None:
        self.close("end of stream inside a block" if self._decoder.in_frame else "closed by peer")
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._busy and self.slot is not None and self.slot.phase is Phase.WRITING:
            self.slot.phase = Phase.HANDLING  # its answers have left
            self._answered()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.close("closed by peer")
        else:
            self.close(f"connection error: {type(exc).__name__}")
        self._lost = True
        self._finish()

    # -- the conversation ---------------------------------------------------------------

    def _opened(self) -> None:
        assert self.slot is not None
        self.slot.phase = Phase.IDLE
        self._listener.connection_opened(self)
        self._pass()  # a sender may send its first block with its handshake's last bytes

    async def _handshake(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        """Upgrade the connection to TLS, or refuse it and say why."""
        upgraded: asyncio.Transport | None = None
        failure = "TLS handshake failed: connection lost"
        try:
            upgraded = await self._loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._listener.route.frame_timeout_s,
                ssl_shutdown_timeout=TLS_SHUTDOWN_S,
            )
        except asyncio.CancelledError:  # closed meanwhile: displaced, or the engine stops
            pass
        except ConnectionAbortedError:  # what the handshake timeout raises
            failure = "TLS handshake timed out"
        except (ssl.SSLError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", None) or type(error).__name__
            failure = f"TLS handshake failed: {reason}"
        self._task = None
        if upgraded is not None and not self._closed:
            self.transport = upgraded
            upgraded.set_write_buffer_limits(high=1)  # TLS pauses at `high`, not beyond it
            self._opened()
            return
        if not self._closed:
            self._listener.tls_refused(self, failure)
            self.close(failure, quiet=True)
        (upgraded or transport).abort()
        self._lost = True  # a protocol hears of no loss before its handshake completed
        self._finish()

    def _pass(self) -> None:
        """Handle the complete blocks the decoder holds, up to BLOCKS_PER_PASS."""
        if self._closed:
            return
        try:
            self._read_blocks()
        except Exception as error:  # a bug: close this connection, keep the listener serving
            self._failed(error)

    def _read_blocks(self) -> None:
        listener, slot = self._listener, self.slot
        assert slot is not None
        blocks: list[Frame | FrameTooLarge] = []
        while True:
            event = self._decoder.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, Junk):
                listener.junk(self, event.size)
                listener.log_discarded(self, self._discarded.add(event.size))
                continue
            listener.log_discarded(self, self._discarded.take())  # at most once per block
            blocks.append(event)
            if len(blocks) == BLOCKS_PER_PASS:
                break
        self._more = len(blocks) == BLOCKS_PER_PASS
        if not blocks:
            self._busy = False
            self._wait_for_data()
            return
        self._busy = True
        slot.phase = Phase.HANDLING
        started = time.perf_counter()
        intake = listener.intake  # a reload during the store does not change it
        batch = intake.admit(blocks, self.peer)
        if not batch.admitted:
            self._answer(cast(list[Verdict], batch.verdicts), blocks, started)
            return
        assert self.transport is not None
        self.transport.pause_reading()
        self._deadline = None  # the store has its own timeout
        self._pass_blocks, self._started = blocks, started
        self._storing = intake.store(batch, self._stored)

    def _stored(self, storing: Storing) -> None:
        """The pass's write ended (committed, failed or timed out): answer it."""
        self._storing = None
        try:
            self._answer(storing.verdicts(), self._pass_blocks, self._started)
        except Exception as error:  # a bug: close this connection, keep the listener serving
            self._failed(error)
        finally:
            self._pass_blocks = ()
            self._finish()

    def _answer(
        self, verdicts: list[Verdict], blocks: Sequence[Frame | FrameTooLarge], started: float
    ) -> None:
        """Send the pass's answers in one write, then say what was answered."""
        slot = self.slot
        assert slot is not None and self.transport is not None
        if not self._closed:
            replies = [encode_frame(v.reply) for v in verdicts if v.reply is not None]
            if replies:
                self.transport.write(b"".join(replies))
        elapsed = time.perf_counter() - started
        # An oversize block goes on being skipped after its answer: it completes later.
        if not self._decoder.in_frame or isinstance(blocks[-1], Frame):
            self._block_deadline = None
            slot.completed(self._listener.clock())
        self.handled += len(blocks)
        self._listener.answered(self, verdicts, blocks, elapsed)
        if self._closed:
            return
        if self._write_paused:
            slot.phase = Phase.WRITING
            self.transport.pause_reading()
            self._arm(self._loop.time() + self._listener.route.frame_timeout_s)
            return
        self._answered()

    def _answered(self) -> None:
        """The pass's answers have left: the next pass, or the next read."""
        if self._listener.stopping:
            self.close(ENGINE_STOPPING)
            return
        if self._more:  # the other connections first
            assert self.transport is not None
            self.transport.pause_reading()
            self._loop.call_soon(self._pass)
            return
        self._pass()

    def _wait_for_data(self) -> None:
        """Arm the deadline of what comes next (the end of a block, or one) and read."""
        slot, transport = self.slot, self.transport
        assert slot is not None and transport is not None
        now = self._loop.time()
        if self._decoder.in_frame:
            if self._block_deadline is None:
                self._block_deadline = now + self._listener.route.frame_timeout_s
                slot.block_started(self._listener.clock(), self._received)
            else:
                slot.phase = Phase.RECEIVING
            self._arm(self._block_deadline)
        else:
            self._block_deadline = None
            slot.phase = Phase.IDLE
            self._arm(now + self._listener.route.idle_timeout_s)
        transport.resume_reading()

    def _arm(self, deadline: float) -> None:
        """Move the deadline; the timer is set again only when it would fire too late."""
        self._deadline = deadline
        if self._timer is not None:
            if self._timer.when() <= deadline:
                return
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._closed or self._deadline is None:
            return
        if self._deadline - self._loop.time() > _LATE_S:
            self._timer = self._loop.call_at(self._deadline, self._expired)
            return
        assert self.slot is not None
        if self.slot.phase is Phase.WRITING:
            self.close(ACK_NOT_READ)
        elif self._decoder.in_frame:
            self.close(FRAME_TIMEOUT)
        else:
            self.close(IDLE_TIMEOUT)

    def _failed(self, error: Exception) -> None:
        log.error(
            "connection handler failed",
            route=self._listener.route.name,
            peer=self.peer,
            exc_info=error,
        )
        self.close("internal error")

    # -- the way out --------------------------------------------------------------------

    def close(self, reason: str, quiet: bool = False) -> None:
        """Close the connection once, saying why (unless `quiet`); one whose ACK waits
        unread is reset."""
        if self._closed or self.slot is None:
            return
        self._closed = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._listener.log_discarded(self, self._discarded.take())
        self._listener.connection_closed(self, reason, quiet)
        if self._task is not None:  # a handshake: its end closes
            self._task.cancel()
            return
        transport = self.transport
        assert transport is not None
        if self.slot.phase is Phase.WRITING:
            _reset(transport)
        else:
            transport.close()

    def abort(self) -> None:
        """Close at once, a batch being stored given up (the engine stops; grace is over)."""
        self.close(ENGINE_STOPPING)
        if self._task is not None:
            self._task.cancel()
        if self._storing is not None:
            self._storing.abandon()
            self._storing = None
            self._finish()
        if self.transport is not None:
            _reset(self.transport)

    def _finish(self) -> None:
        """`done` once the connection is lost and nothing of it runs any more."""
        if self._lost and self._task is None and self._storing is None and not self.done.done():
            self._listener.forget(self)
            self.done.set_result(None)


def _reset(transport: asyncio.Transport) -> None:
    """Close at once, dropping what the peer has not read.

    For a peer that does not read its ACKs: a close sends its FIN after the bytes it has
    not read, so it never sees one, and the socket outlives the connection in the kernel.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NONE)
    transport.abort()
