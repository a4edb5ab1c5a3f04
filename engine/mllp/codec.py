"""Sans-IO MLLP framing: bytes in, events out, no sockets.

A block is `0x0B` + payload + `0x1C 0x0D`. TCP is a stream, so a read may hold part of a
block, several blocks, or junk between blocks. The decoder scans front to back and never
rescans what it has already looked at; a block larger than the limit is reported once and
then skipped up to its end marker, so the connection stays usable. Line breaks between
blocks (common in capture files, and the 0x0D of a block's end) are not junk.

Usage, as with h11: `decoder.feed(data)`, then call `decoder.next_event()` until it returns
`NEED_DATA`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
END_MARKER = b"\x1c"
DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
HEAD_KEPT_BYTES = 1024

COMMIT_ACK = b"\x0b\x06\x1c\x0d"
COMMIT_NAK = b"\x0b\x15\x1c\x0d"


class _Need(Enum):
    NEED_DATA = "need-data"


NEED_DATA = _Need.NEED_DATA


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete block's payload (without the framing bytes)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Junk:
    """Bytes found outside any block; only their count is reported."""

    size: int


@dataclass(frozen=True, slots=True)
class FrameTooLarge:
    """A block went past the size limit; `head` keeps its first bytes to answer with a NACK."""

    head: bytes
    size: int


Event = Frame | Junk | FrameTooLarge


def encode_frame(payload: bytes) -> bytes:
    """Wrap one payload in MLLP framing."""
    return START_BLOCK + payload + END_BLOCK


class FrameDecoder:
    """Turns a byte stream into MLLP events.

    `in_frame` says whether a block has started and not ended, so the caller can apply the
    started-frame timeout rather than the idle timeout.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self._max = max_frame_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched for the end marker
        self._state = _State.IDLE

    @property
    def in_frame(self) -> bool:
        return self._state is not _State.IDLE

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_event(self) -> Event | _Need:
        while True:
            if self._state is _State.IDLE:
                event = self._seek_start()
            elif self._state is _State.IN_FRAME:
                event = self._seek_end()
            else:
                event = self._skip_to_end()
            if event is not None:
                return event

    def _seek_start(self) -> Event | _Need | None:
        start = self._buffer.find(START_BLOCK)
        outside = self._buffer if start == -1 else self._buffer[:start]
        # Line breaks between blocks are common in captures and are not junk.
        junk = len(outside.translate(None, b"\r\n"))
        if start == -1:
            self._buffer.clear()
            return Junk(junk) if junk else NEED_DATA
        del self._buffer[: start + 1]
        self._scanned = 0
        self._state = _State.IN_FRAME
        return Junk(junk) if junk else None

    def _find_end(self) -> int:
        # The block ends at 0x1C; its 0x0D is then skipped like any line break between
        # blocks, so a sender that omits it still gets its answer.
        end = self._buffer.find(END_MARKER, self._scanned)
        self._scanned = len(self._buffer) if end == -1 else 0
        return end

    def _restarted(self) -> Junk | FrameTooLarge | None:
        """A new start byte inside an unfinished block: the sender gave that block up. Every
        block given up before the last start byte seen is reported as one `Junk`, so a
        flood of start bytes costs one event per read, not one per byte; a block given up
        past the limit is `FrameTooLarge`, as it is when its bytes come in several reads."""
        end = self._buffer.find(END_MARKER, self._scanned)
        limit = len(self._buffer) if end == -1 else end
        restart = self._buffer.rfind(START_BLOCK, self._scanned, limit)
        if restart == -1:
            return None
        given_up = restart + 1
        if restart > self._max:  # only then may a block given up be over the limit
            oversize = self._first_oversize(restart)
            if oversize == 0:
                size = self._buffer.find(START_BLOCK)
                head = bytes(self._buffer[: min(size, HEAD_KEPT_BYTES)])
                del self._buffer[: size + 1]
                self._scanned = 0
                return FrameTooLarge(head, size)
            if oversize is not None:
                given_up = oversize  # the blocks before it; it is reported next
        del self._buffer[:given_up]
        self._scanned = 0
        return Junk(given_up)

    def _first_oversize(self, last: int) -> int | None:
        """Where the first block over the limit begins among those that end at a start byte
        up to `last` (itself a start byte), or None."""
        begin = 0
        while begin <= last:
            stop = self._buffer.find(START_BLOCK, begin, last + 1)
            if stop - begin > self._max:
                return begin
            begin = stop + 1
        return None

    def _seek_end(self) -> Event | _Need | None:
        abandoned = self._restarted()
        if abandoned is not None:
            return abandoned
        end = self._find_end()
        if end == -1:
            if len(self._buffer) <= self._max:
                return NEED_DATA
            head = bytes(self._buffer[:HEAD_KEPT_BYTES])
            size = len(self._buffer)
            self._state = _State.SKIPPING
            self._drop_scanned()
            return FrameTooLarge(head, size)
        if end > self._max:
            head = bytes(self._buffer[: min(end, HEAD_KEPT_BYTES)])
            del self._buffer[: end + 1]
            self._state = _State.IDLE
            return FrameTooLarge(head, end)
        payload = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._state = _State.IDLE
        return Frame(payload)

    def _skip_to_end(self) -> _Need | None:
        """Skip an oversize block up to its end marker, or up to a start byte: its sender
        gave it up and the next block begins there, as it would in a block within the limit."""
        end = self._find_end()
        start = self._buffer.find(START_BLOCK, 0, len(self._buffer) if end == -1 else end)
        if start != -1:
            del self._buffer[: start + 1]
            self._scanned = 0
            self._state = _State.IN_FRAME
            return None
        if end == -1:
            self._drop_scanned()
            return NEED_DATA
        del self._buffer[: end + 1]
        self._state = _State.IDLE
        return None

    def _drop_scanned(self) -> None:
        """Forget the bytes of an oversize block seen so far."""
        self._buffer.clear()
        self._scanned = 0


class _State(Enum):
    IDLE = "idle"
    IN_FRAME = "in-frame"
    SKIPPING = "skipping"
