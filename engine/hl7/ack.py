"""Building HL7 acknowledgement messages (HL7 v2 chapter 2).

An ACK has its own unique MSH-10, swaps MSH-3/4 with MSH-5/6, says `ACK^<trigger>^ACK`,
copies MSH-11, MSH-12 and MSH-18, and echoes the received MSH-10 in MSA-2; a trigger or an
MSH-18 the engine does not know is left out rather than repeated (`engine.hl7.codes`).
Errors carry an ERR segment with an HL7 table 0357 code. The clock and the id generator are
injected so that the bytes are exact in tests.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum, StrEnum

from engine.hl7.charset import is_known
from engine.hl7.codes import known_trigger
from engine.hl7.header import Header
from engine.hl7.message import Separators, component


class AckCode(StrEnum):
    """MSA-1 values: original mode (A*) and enhanced-mode accept ACKs (C*)."""

    AA = "AA"
    AE = "AE"
    AR = "AR"
    CA = "CA"
    CE = "CE"
    CR = "CR"


class Outcome(Enum):
    """What happened to a received message, before choosing the ACK's mode."""

    ACCEPTED = "accepted"
    ERROR = "error"  # the sender may retry: AE / CE
    REJECTED = "rejected"  # retrying will not help: AR / CR


_CODES = {
    (False, Outcome.ACCEPTED): AckCode.AA,
    (False, Outcome.ERROR): AckCode.AE,
    (False, Outcome.REJECTED): AckCode.AR,
    (True, Outcome.ACCEPTED): AckCode.CA,
    (True, Outcome.ERROR): AckCode.CE,
    (True, Outcome.REJECTED): AckCode.CR,
}


class ErrorCode(IntEnum):
    """HL7 table 0357, the codes the engine uses."""

    SEGMENT_SEQUENCE = 100
    REQUIRED_FIELD_MISSING = 101
    DATA_TYPE = 102
    TABLE_VALUE_NOT_FOUND = 103
    UNSUPPORTED_MESSAGE_TYPE = 200
    UNSUPPORTED_EVENT = 201
    UNSUPPORTED_PROCESSING_ID = 202
    UNSUPPORTED_VERSION = 203
    UNKNOWN_KEY = 204
    DUPLICATE_KEY = 205
    APPLICATION_INTERNAL_ERROR = 207


_ERROR_TEXTS = {
    ErrorCode.SEGMENT_SEQUENCE: "Segment sequence error",
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.DATA_TYPE: "Data type error",
    ErrorCode.TABLE_VALUE_NOT_FOUND: "Table value not found",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_EVENT: "Unsupported event code",
    ErrorCode.UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY: "Unknown key identifier",
    ErrorCode.DUPLICATE_KEY: "Duplicate key identifier",
    ErrorCode.APPLICATION_INTERNAL_ERROR: "Application internal error",
}


@dataclass(frozen=True, slots=True)
class AckError:
    """An ERR segment's content: the code, where (e.g. `MSH^1^9`), and a short text."""

    code: ErrorCode
    location: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A negative answer to a received message: AE/CE (`ERROR`) or AR/CR (`REJECTED`)."""

    outcome: Outcome
    error: AckError


def ack_code(outcome: Outcome, enhanced: bool) -> AckCode:
    return _CODES[(enhanced, outcome)]


class ControlIds:
    """Unique MSH-10 values for messages the engine creates: 20 characters (the v2.3 limit).

    A random per-process prefix and a counter: unique across restarts and engine instances
    without paying for a random UUID per acknowledgement.
    """

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4).upper()
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):012d}"


class AckBuilder:
    """Builds ACK texts; `clock` and `make_id` are injected for exact bytes in tests."""

    def __init__(
        self,
        clock: Callable[[], datetime] = datetime.now,
        make_id: Callable[[], str] | None = None,
    ) -> None:
        self._clock = clock
        self._make_id = make_id or ControlIds()
        self._second: tuple[int, ...] = ()
        self._timestamp = ""

    def _now(self) -> str:
        """MSH-7 of an ACK; formatted once a second (a burst answers hundreds in one)."""
        now = self._clock()
        second = now.timetuple()[:6]
        if second != self._second:
            self._second, self._timestamp = second, now.strftime("%Y%m%d%H%M%S")
        return self._timestamp

    def build(
        self,
        header: Header | None,
        code: AckCode,
        text: str = "",
        error: AckError | None = None,
    ) -> str:
        """The ACK for `header` (None when the received content had no readable MSH)."""
        separators = header.separators if header else Separators()
        f, c = separators.field, separators.component
        timestamp = self._now()
        if header is None:
            msh = [
                "MSH",
                separators.encoding_characters,
                "",
                "",
                "",
                "",
                timestamp,
                "",
                f"ACK{c}{c}ACK",
                self._make_id(),
                "P",
                "2.5",
            ]
        else:
            msh = [
                "MSH",
                separators.encoding_characters,
                header.receiving_application,
                header.receiving_facility,
                header.sending_application,
                header.sending_facility,
                timestamp,
                "",
                # A trigger or a charset the engine does not know is not repeated back.
                f"ACK{c}{header.trigger if known_trigger(header.trigger) else ''}{c}ACK",
                self._make_id(),
                header.processing_id,
                header.version,
            ]
            if header.charset and is_known(component(header.charset, 1, c)):
                msh += ["", "", "", "", "", header.charset]
        segments = [f.join(msh)]
        msa = ["MSA", code.value, header.control_id if header else ""]
        if text:
            msa.append(_clean(text, separators))
        segments.append(f.join(msa))
        if error is not None:
            description = _clean(error.text or _ERROR_TEXTS[error.code], separators)
            segments.append(
                f.join(
                    [
                        "ERR",
                        "",
                        error.location,
                        f"{error.code.value}{c}{_ERROR_TEXTS[error.code]}{c}HL70357",
                        "E",
                        "",
                        "",
                        "",
                        description,
                    ]
                )
            )
        return "\r".join(segments) + "\r"


def _clean(text: str, separators: Separators) -> str:
    """Free text safe inside one field: delimiters replaced, length bounded."""
    for delimiter in (separators.field, *separators.encoding_characters, "\r", "\n"):
        text = text.replace(delimiter, " ")
    return text[:80]
