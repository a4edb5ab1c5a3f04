"""What happens to one received block: check it, store it, answer it.

The listener hands over a block's payload and sends back whatever this returns. Whether the
route takes the message is `engine.inbound.admission`'s (the embedding API asks it too): a
refused one gets a negative ACK with the ERR (the connection stays usable), an ACK none. The
rules of the shared store-and-forward doc live here: a message is acknowledged positively
only once its transaction has committed, and then handed to the router (`Stored`); one
dropped by a before-ACK step is stored with their decision and acknowledged, never routed;
a duplicate (MSH-3 + MSH-4 + MSH-10) gets the original ACK and is not processed again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.base.logs import get_logger
from engine.config.settings import RouteSettings
from engine.handoffs import Stored
from engine.hl7.ack import AckBuilder, AckError, ErrorCode, Outcome, Refusal, ack_code
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.inbound.admission import (
    UNREADABLE_CODEC,
    AdmissionRules,
    Ignored,
    Refused,
    Unreadable,
    admit,
    read_message,
)
from engine.mllp.codec import COMMIT_ACK, COMMIT_NAK
from engine.routing.patient import patient_keys_of
from engine.routing.route import RoutePlan
from engine.steps.pipeline import RoutedMessage
from engine.store.base import STORE_TIMEOUT_S, Incoming
from engine.store.roles import Inbox

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


class Intake:
    """Handles the blocks received on one route's listener."""

    def __init__(
        self,
        route: RouteSettings,
        store: Inbox,
        acks: AckBuilder | None = None,
        plan: RoutePlan | None = None,
        stored: Stored | None = None,
        clock: Callable[[], float] = time.time,
        store_timeout_s: float = STORE_TIMEOUT_S,
    ) -> None:
        self.route = route
        self._store = store
        self._store_timeout_s = store_timeout_s
        self._rules = AdmissionRules.of(plan or RoutePlan(route))
        self._acks = acks or AckBuilder()
        self._stored_handoff = stored or Stored()
        self._clock = clock

    async def receive(self, payload: bytes, peer: str) -> Verdict:
        admission = admit(payload, self._rules)
        if isinstance(admission, Unreadable):
            return self._refuse(admission.refusal, admission.header, UNREADABLE_CODEC)
        header = admission.routed.header
        if isinstance(admission, Ignored):
            return Verdict(
                None, Outcome.ACCEPTED, "", header.control_id, "ACK", reason="ack-ignored"
            )
        if isinstance(admission, Refused):
            return self._refuse(admission.refusal, header, admission.routed.codec)
        return await self._store_message(admission.routed, peer)

    def too_large(self, head: bytes, size: int) -> Verdict:
        """Answer a block over `max_frame_bytes` from what its first bytes say."""
        read = read_message(head, self._rules)
        error = AckError(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            "",
            f"message of {size} bytes or more exceeds the {self.route.max_frame_bytes} limit",
        )
        refusal = Refusal(Outcome.REJECTED, error)
        if isinstance(read, Unreadable):
            return self._refuse(refusal, None, UNREADABLE_CODEC)
        return self._refuse(refusal, read.header, read.codec)

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
            patient=patient_keys_of(routed.message),
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
            not_stored = AckError(
                ErrorCode.APPLICATION_INTERNAL_ERROR, "", "message not stored, resend it"
            )
            return self._refuse(Refusal(Outcome.ERROR, not_stored), header, codec)
        if accepted.duplicate and not accepted.same_content:
            other_content = AckError(
                ErrorCode.DUPLICATE_KEY,
                "MSH^1^10",
                "control id already received with other content",
            )
            return self._refuse(Refusal(Outcome.REJECTED, other_content), header, codec)
        # A dropped one too (the router then knows its id is used); not one whose step
        # failed: the router reads it from the store and runs its steps again.
        if not accepted.duplicate and not routed.failed:
            routed.message_id = accepted.message_id
            self._stored_handoff(routed)
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

    def _refuse(self, refusal: Refusal, header: Header | None, codec: str) -> Verdict:
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


def content_hash(message: Message) -> bytes:
    """Hash of the content without MSH-7, so a resend with a fresh timestamp still matches."""
    fields = message.texts[0].split(message.separators.field)
    if len(fields) > 6:
        fields[6] = ""
    text = "\r".join([message.separators.field.join(fields), *message.texts[1:]])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
