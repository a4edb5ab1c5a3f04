"""Whether a route takes the bytes it received: the one admission sequence.

The listener's intake, the embedding API (`engine.embed`), and through it route tests, the
HTTP API and offline enrichment, all call `admit`, so they take and refuse the same
messages with the same ACK code and ERR. In order (HL7 v2 chapter 2):

1. decode with the route's charset policy: an unknown MSH-18 is AE, ERR 103 at MSH-18;
   bytes not valid in the charset, AE, ERR 102 (`Unreadable`);
2. parse: content that is not HL7 v2 is AR, ERR 100 (`Unreadable`);
3. an ACK is never acknowledged nor routed (`Ignored`);
4. the header: an empty MSH-9 or MSH-10 is AE, ERR 101; a version other than 2.x AR, ERR
   203; a type or event outside the route's `accept` AR, ERR 200 or 201 (`Refused`);
5. the route's steps placed before the ACK, which may refuse (`Refused`, with their ERR)
   or drop the message (`Admitted`, dropped: stored and acknowledged, never routed).

What each caller does with a refusal: the intake answers the sender a negative ACK carrying
the ERR (or the MLLP release 2 NAK) and stores nothing; the embedding API returns it as
`Processed.refusal`; route tests compare its ACK code with the case's `ack`; the HTTP API
answers 400 `not_hl7` for `Unreadable` bytes, 422 `refused` with the ERR code otherwise.

Pure: no I/O and no store; the before-ACK steps are synchronous by contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.hl7.ack import AckError, ErrorCode, Outcome, Refusal
from engine.hl7.charset import CharsetError, CharsetPolicy, decode
from engine.hl7.codes import known_message_type, known_trigger, shown
from engine.hl7.header import Header
from engine.hl7.message import Message, MessageFormatError
from engine.hl7.patterns import Patterns
from engine.routing.route import RoutePlan
from engine.steps.pipeline import BoundStep, RoutedMessage, screen

UNREADABLE_CODEC = "latin-1"  # what an ACK to bytes no charset reads is written in


@dataclass(frozen=True)
class AdmissionRules:
    """What a route admits: its charset policy, its `accept` list, its before-ACK steps."""

    route: str
    charsets: CharsetPolicy
    accept: Patterns
    before_ack: Sequence[BoundStep] = ()

    @classmethod
    def of(cls, plan: RoutePlan) -> AdmissionRules:
        settings = plan.settings
        return cls(settings.name, plan.charsets, Patterns(settings.accept), plan.before_ack)


@dataclass(frozen=True, slots=True)
class Admitted:
    """Taken: to store and acknowledge (and to route, unless a before-ACK step dropped it)."""

    routed: RoutedMessage


@dataclass(frozen=True, slots=True)
class Refused:
    """Read, but not taken: the AE/AR and ERR to answer; nothing is stored."""

    routed: RoutedMessage  # its `refusal` is this one; its decisions, the before-ACK steps'
    refusal: Refusal


@dataclass(frozen=True, slots=True)
class Ignored:
    """An ACK: not answered, not stored, not routed."""

    routed: RoutedMessage


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Bytes that are no HL7 message in the route's charsets: the AE/AR and ERR to answer."""

    refusal: Refusal
    header: Header | None  # the MSH as Latin-1 shows it, when only the charset failed


Readable = Admitted | Refused | Ignored


def admit(payload: bytes, rules: AdmissionRules) -> Readable | Unreadable:
    """The verdict on one received message (see the module's steps)."""
    read = read_message(payload, rules)
    if isinstance(read, Unreadable):
        return read
    if read.header.message_type == "ACK":
        return Ignored(read)
    refusal = _header_refusal(read.header, rules.accept)
    if refusal is None and rules.before_ack:
        screen(rules.before_ack, read)
        refusal = read.refusal
    if refusal is None:
        return Admitted(read)
    read.refusal = refusal
    return Refused(read, refusal)


def read_message(payload: bytes, rules: AdmissionRules) -> RoutedMessage | Unreadable:
    """Decode and parse, or why not (steps 1 and 2)."""
    try:
        decoded = decode(payload, rules.charsets)
    except CharsetError as error:
        code = ErrorCode.TABLE_VALUE_NOT_FOUND if error.unknown_label else ErrorCode.DATA_TYPE
        location = "MSH^1^18" if error.unknown_label else ""
        return Unreadable(
            Refusal(Outcome.ERROR, AckError(code, location, str(error))),
            _latin1_header(payload),
        )
    try:
        message = Message.parse(decoded.text)
    except MessageFormatError as error:
        return Unreadable(
            Refusal(Outcome.REJECTED, AckError(ErrorCode.SEGMENT_SEQUENCE, "", str(error))),
            None,
        )
    header = Header.from_message(message)
    return RoutedMessage(0, rules.route, payload, decoded.codec, message, header)


def _header_refusal(header: Header, accept: Patterns) -> Refusal | None:
    """Why a route does not take a message with this header (AE/AR and the ERR), or None."""
    if not header.message_type:
        return Refusal(
            Outcome.ERROR,
            AckError(ErrorCode.REQUIRED_FIELD_MISSING, "MSH^1^9", "MSH-9 message type is empty"),
        )
    if not header.control_id:
        return Refusal(
            Outcome.ERROR,
            AckError(ErrorCode.REQUIRED_FIELD_MISSING, "MSH^1^10", "MSH-10 control id is empty"),
        )
    if not header.version_id.startswith("2."):
        return Refusal(
            Outcome.REJECTED,
            AckError(ErrorCode.UNSUPPORTED_VERSION, "MSH^1^12", "HL7 v2.x expected"),
        )
    if accept.matches(header.type_and_trigger):
        return None
    if accept.message_types().matches(header.message_type):
        return Refusal(
            Outcome.REJECTED,
            AckError(
                ErrorCode.UNSUPPORTED_EVENT,
                "MSH^1^9^2",
                f"event {shown(header.trigger, known_trigger(header.trigger))} not accepted",
            ),
        )
    return Refusal(
        Outcome.REJECTED,
        AckError(
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "MSH^1^9^1",
            "message type "
            f"{shown(header.message_type, known_message_type(header.message_type))} not accepted",
        ),
    )


def _latin1_header(payload: bytes) -> Header | None:
    """The MSH of bytes no charset of the route reads, for the ACK to echo its fields."""
    try:
        return Header.from_message(Message.parse(payload.decode(UNREADABLE_CODEC)))
    except MessageFormatError:
        return None
