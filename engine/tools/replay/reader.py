"""Sans-IO reading of a message file: bytes in, messages with their position out.

Files met in the wild hold one message, several messages separated by CR, LF, CRLF or blank
lines, MLLP-framed captures, or FHS/BHS batches. Whatever the layout, a message starts at an
`MSH` at the start of a line, envelope segments are dropped, and the segments are re-joined
with CR: the line breaks between segments are the only bytes that change, so what is sent is
what the file holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from engine.errors import EngineError
from engine.mllp.codec import NEED_DATA, START_BLOCK, Frame, FrameDecoder, Junk

SEGMENT_TERMINATOR = b"\r"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")
_UTF8_BOM = b"\xef\xbb\xbf"


class Layout(Enum):
    """How a file holds its messages (reported by `--dry-run`)."""

    TEXT = "text"
    BATCH = "batch"
    MLLP = "mllp"


class ReadError(EngineError):
    """The file holds no message, or bytes that belong to none: nothing of it may be sent."""


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as it will be sent, and where it was in the file (1-based)."""

    position: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class FileContent:
    layout: Layout
    messages: list[RawMessage]


def read_messages(data: bytes) -> FileContent:
    """Split a file's bytes into messages; raise `ReadError` rather than guess."""
    data = data.removeprefix(_UTF8_BOM)
    if data.lstrip(b"\r\n\t ").startswith(START_BLOCK):
        layout, payloads = Layout.MLLP, _split_frames(data)
    else:
        payloads, enveloped = _split_text(data, "line")
        layout = Layout.BATCH if enveloped else Layout.TEXT
    if not payloads:
        raise ReadError("no HL7 message (no line starting with MSH)")
    return FileContent(
        layout, [RawMessage(number, payload) for number, payload in enumerate(payloads, 1)]
    )


def _split_frames(data: bytes) -> list[bytes]:
    decoder = FrameDecoder(max_frame_bytes=len(data) + 1)
    decoder.feed(data)
    payloads: list[bytes] = []
    frame_number = 0
    while (event := decoder.next_event()) is not NEED_DATA:
        if isinstance(event, Junk):
            raise ReadError(f"{event.size} bytes outside MLLP frames")
        assert isinstance(event, Frame)  # the limit exceeds the file: never FrameTooLarge
        frame_number += 1
        messages, _ = _split_text(event.payload, f"frame {frame_number}, line")
        if not messages:
            raise ReadError(f"MLLP frame {frame_number} holds no HL7 message")
        payloads += messages
    if decoder.in_frame:
        raise ReadError("last MLLP frame is not terminated (truncated capture)")
    return payloads


def _split_text(data: bytes, where: str) -> tuple[list[bytes], bool]:
    """Messages of a text block (segments from one MSH line to the next or to an envelope
    segment), and whether batch envelope segments were seen."""
    messages: list[list[bytes]] = []
    current: list[bytes] | None = None
    enveloped = False
    for number, line in enumerate(_LINE_BREAK.split(data), 1):
        if not line.strip():
            continue
        if _is_segment(line, b"MSH"):
            current = [line]
            messages.append(current)
        elif any(_is_segment(line, name) for name in _ENVELOPE):
            current, enveloped = None, True
        elif current is not None:
            current.append(line)
        else:
            raise ReadError(f"{where} {number}: segment outside any message (no MSH before it)")
    payloads = [SEGMENT_TERMINATOR.join(segments) + SEGMENT_TERMINATOR for segments in messages]
    return payloads, enveloped


def _is_segment(line: bytes, name: bytes) -> bool:
    return line.startswith(name) and len(line) > 3 and not line[3:4].isalnum()
