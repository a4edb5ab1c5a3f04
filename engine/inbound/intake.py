"""What happens to one received block: check it, store it, answer it.

The listener hands over a block's payload and sends back whatever this returns. The rules
of HL7 v2 chapter 2 and of the shared store-and-forward doc live here: a message is
acknowledged positively only once its transaction has committed; undecodable or non-HL7
content gets a negative ACK with an ERR segment (the connection stays usable); message types
outside the route's `accept` list get AR/CR; the route's steps placed before the ACK may
refuse a message (AE/AR with the ERR they give) or drop it (stored with their decision,
acknowledged, never routed); a duplicate (MSH-3 + MSH-4 + MSH-10) gets the original ACK and
is not processed again; an ACK is never acknowledged.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.base.logs import get_logger
from engine.config.settings import RouteSettings
from engine.errors import EngineError
from engine.hl7.ack import AckBuilder, AckError, ErrorCode, Outcome, Refusal, ack_code
from engine.hl7.charset import CharsetError, CharsetPolicy, decode
from engine.hl7.codes import known_message_type, known_trigger, shown
from engine.hl7.header import Header
from engine.hl7.message import Message, MessageFormatError
from engine.hl7.patterns import Patterns
from engine.mllp.codec import COMMIT_ACK, COMMIT_NAK
from engine.routing.route import RoutePlan
from engine.steps.pipeline import RoutedMessage
from engine.store.base import STORE_TIMEOUT_S, Incoming, Store

log = get_logger("engine.inbound.intake")

_SEND_ACCEPT_ACK = {
    # MSH-15: AL always, NE never, ER on error only, SU on success only.
    "AL": {Outcome.ACCEPTED, Outcome.ERROR, Outcome.REJECTED},
    "NE": set(),
    "ER": {Outcome.ERROR, Outcome.REJECTED},
    "SU": {Outcome.ACCEPTED},
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a block was handled: the reply payload (None: send nothing) and log facts
    (`message_type` as logs may show it: unknown codes by their length only)."""

    reply: bytes | None
    outcome: Outcome
    ack_code: str = ""  # AA, AE, AR (CA, CE, CR in enhanced mode); "" for an ACK received
    control_id: str = ""
    message_type: str = ""
    message_id: int | None = None
    duplicate: bool = False
    reason: str = ""


class _Refusal(EngineError):
    """A block that will not be stored, with the ACK error to answer."""

    def __init__(self, outcome: Outcome, error: AckError, header: Header | None) -> None:
        super().__init__(error.text)
        self.outcome = outcome
        self.error = error
        self.header = header


class Intake:
    """Handles the blocks received on one route's listener."""

    def __init__(
        self,
        route: RouteSettings,
        store: Store,
        acks: AckBuilder | None = None,
        plan: RoutePlan | None = None,
        on_stored: Callable[[RoutedMessage], None] = lambda routed: None,
        clock: Callable[[], float] = time.time,
        store_timeout_s: float = STORE_TIMEOUT_S,
    ) -> None:
        self.route = route
        self._store = store
        self._store_timeout_s = store_timeout_s
        self._screen = plan.screen if plan is not None and plan.before_ack else None
        self._acks = acks or AckBuilder()
        self._on_stored = on_stored
        self._clock = clock
        self._charsets = CharsetPolicy(
            forced=route.charset, default=route.default_charset, fallback=route.fallback_charset
        )
        self._accept = Patterns(route.accept)

    async def receive(self, payload: bytes, peer: str) -> Verdict:
        try:
            codec, message, header = self._read(payload)
        except _Refusal as refusal:
            return self._refuse(refusal, "latin-1")
        if header.message_type == "ACK":
            return Verdict(
                None, Outcome.ACCEPTED, "", header.control_id, "ACK", reason="ack-ignored"
            )
        routed = RoutedMessage(0, self.route.name, payload, codec, message, header)
        refused = header_refusal(header, self._accept)
        if refused is None and self._screen is not None:
            self._screen(routed)
            refused = routed.refusal
        if refused is not None:
            return self._refuse(_Refusal(refused.outcome, refused.error, header), codec)
        return await self._store_message(routed, peer)

    def too_large(self, head: bytes, size: int) -> Verdict:
        """Answer a block over `max_frame_bytes` from what its first bytes say."""
        header: Header | None
        codec = "latin-1"
        try:
            codec, _, header = self._read(head)
        except _Refusal:
            header = None
        error = AckError(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            "",
            f"message of {size} bytes or more exceeds the {self.route.max_frame_bytes} limit",
        )
        return self._refuse(_Refusal(Outcome.REJECTED, error, header), codec)

    def _read(self, payload: bytes) -> tuple[str, Message, Header]:
        try:
            decoded = decode(payload, self._charsets)
        except CharsetError as error:
            header = _header_or_none(payload.decode("latin-1"))
            code = ErrorCode.TABLE_VALUE_NOT_FOUND if error.unknown_label else ErrorCode.DATA_TYPE
            location = "MSH^1^18" if error.unknown_label else ""
            raise _Refusal(Outcome.ERROR, AckError(code, location, str(error)), header) from None
        try:
            message = Message.parse(decoded.text)
        except MessageFormatError as error:
            raise _Refusal(
                Outcome.REJECTED, AckError(ErrorCode.SEGMENT_SEQUENCE, "", str(error)), None
            ) from None
        return decoded.codec, message, Header.from_message(message)

    async def _store_message(self, routed: RoutedMessage, peer: str) -> Verdict:
        header, codec = routed.header, routed.codec
        ack = self._ack(header, Outcome.ACCEPTED, codec)
        incoming = Incoming(
            route=self.route.name,
            peer=peer,
            received_at=self._clock(),
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            control_id=header.control_id,
            message_type=header.type_and_trigger,
            content_hash=content_hash(routed.message),
            raw=routed.raw,
            ack=ack or b"",
            decisions=routed.decisions,
            dropped=routed.dropped,
        )
        try:
            # A store not answering (a database cut off, a disk hung) must not keep the
            # sender waiting past its own ACK timeout: AE, and its resend is safe (a
            # commit that lands later makes it a duplicate, answered with the original ACK).
            async with asyncio.timeout(self._store_timeout_s):
                accepted = await self._store.accept(incoming)
        except Exception as error:  # the sender must resend: nothing was acknowledged
            log.error(
                "message not stored",
                route=self.route.name,
                control_id=header.control_id,
                exc_info=error,
            )
            return self._refuse(
                _Refusal(
                    Outcome.ERROR,
                    AckError(
                        ErrorCode.APPLICATION_INTERNAL_ERROR, "", "message not stored, resend it"
                    ),
                    header,
                ),
                codec,
            )
        if accepted.duplicate and not accepted.same_content:
            return self._refuse(
                _Refusal(
                    Outcome.REJECTED,
                    AckError(
                        ErrorCode.DUPLICATE_KEY,
                        "MSH^1^10",
                        "control id already received with other content",
                    ),
                    header,
                ),
                codec,
            )
        # A dropped one too (the router then knows its id is used); not one whose step
        # failed: the router reads it from the store and runs its steps again.
        if not accepted.duplicate and not routed.failed:
            routed.message_id = accepted.message_id
            self._on_stored(routed)
        reply = COMMIT_ACK[1:2] if self.route.mllp_release2 else (accepted.ack or None)
        return Verdict(
            reply,
            Outcome.ACCEPTED,
            ack_code(Outcome.ACCEPTED, header.enhanced_mode),
            header.control_id,
            header.shown_type,
            accepted.message_id,
            accepted.duplicate,
        )

    def _refuse(self, refusal: _Refusal, codec: str) -> Verdict:
        header = refusal.header
        if self.route.mllp_release2:
            reply: bytes | None = COMMIT_NAK[1:2]
        else:
            reply = self._ack(header, refusal.outcome, codec, refusal.error)
        return Verdict(
            reply,
            refusal.outcome,
            ack_code(refusal.outcome, header is not None and header.enhanced_mode),
            header.control_id if header else "",
            header.shown_type if header else "",
            reason=f"{refusal.error.code.value} {refusal.error.text}",
        )

    def _ack(
        self, header: Header | None, outcome: Outcome, codec: str, error: AckError | None = None
    ) -> bytes | None:
        enhanced = header is not None and header.enhanced_mode
        if enhanced:
            assert header is not None
            wanted = _SEND_ACCEPT_ACK.get(header.accept_ack_type.upper() or "AL")
            if wanted is not None and outcome not in wanted:
                return None
        code = ack_code(outcome, enhanced)
        text = error.text if error else ""
        return self._acks.build(header, code, text, error).encode(codec, errors="replace")


def header_refusal(header: Header, accept: Patterns) -> Refusal | None:
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


def content_hash(message: Message) -> bytes:
    """Hash of the content without MSH-7, so a resend with a fresh timestamp still matches."""
    fields = message.texts[0].split(message.separators.field)
    if len(fields) > 6:
        fields[6] = ""
    text = "\r".join([message.separators.field.join(fields), *message.texts[1:]])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _header_or_none(text: str) -> Header | None:
    try:
        return Header.from_message(Message.parse(text))
    except MessageFormatError:
        return None
