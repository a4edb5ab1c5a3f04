"""What happens to the blocks of one read: check them, store them, answer them.

The listener hands over the blocks of a read and sends back, in their order, whatever this
returns. Whether the route takes a message is `engine.inbound.admission`'s (the embedding API
asks it too): a refused one gets a negative ACK with the ERR (the connection stays usable),
an ACK none; neither waits for the store. The others are stored together in one write. The
rules of the shared store-and-forward doc live here: a message is acknowledged positively
only once its transaction has committed, and then handed to the router (`Stored`); one
dropped by a before-ACK step is stored with their decision and acknowledged, never routed;
a duplicate (MSH-3 + MSH-4 + MSH-10) gets the original ACK and is not processed again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
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
    Admitted,
    Ignored,
    Unreadable,
    admit,
    read_message,
)
from engine.mllp.codec import COMMIT_ACK, COMMIT_NAK, Frame, FrameTooLarge
from engine.routing.patient import patient_keys_of
from engine.routing.route import RoutePlan
from engine.steps.pipeline import RoutedMessage
from engine.store.base import STORE_TIMEOUT_S, Accepted, Incoming
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


@dataclass(slots=True)
class Batch:
    """The blocks of one read, admitted: a verdict for each (None where the store decides)
    and the messages to store, in order."""

    verdicts: list[Verdict | None]
    admitted: list[RoutedMessage]
    incomings: list[Incoming]


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
        self.store_timeout_s = store_timeout_s
        self._rules = AdmissionRules.of(plan or RoutePlan(route))
        self._acks = acks or AckBuilder()
        self._stored_handoff = stored or Stored()
        self._clock = clock

    def admit(self, blocks: Sequence[Frame | FrameTooLarge], peer: str) -> Batch:
        """Check the blocks of one read: refused, ignored and oversize ones are answered at
        once; the others wait in the batch for `store`."""
        batch = Batch([], [], [])
        received_at = self._clock()
        for block in blocks:
            if isinstance(block, FrameTooLarge):
                batch.verdicts.append(self._too_large(block))
                continue
            admission = admit(block.payload, self._rules)
            if isinstance(admission, Admitted):
                routed = admission.routed
                batch.verdicts.append(None)
                batch.admitted.append(routed)
                batch.incomings.append(self._incoming(routed, peer, received_at))
            elif isinstance(admission, Unreadable):
                batch.verdicts.append(
                    self._refuse(admission.refusal, admission.header, UNREADABLE_CODEC)
                )
            elif isinstance(admission, Ignored):
                control_id = admission.routed.header.control_id
                batch.verdicts.append(
                    Verdict(None, Outcome.ACCEPTED, "", control_id, "ACK", reason="ack-ignored")
                )
            else:
                batch.verdicts.append(
                    self._refuse(admission.refusal, admission.routed.header, admission.routed.codec)
                )
        return batch

    def store(self, batch: Batch, done: Callable[[Storing], None]) -> Storing:
        """Commit the batch's admitted messages in one write; `done` is called once it
        committed, failed or timed out, from the write's callback: no task waits for it."""
        try:
            write = self._store.accept_many(batch.incomings)
        except Exception as error:  # a store closed or refusing: the senders must resend
            write = asyncio.get_running_loop().create_future()
            write.set_exception(error)
        return Storing(self, batch, write, done)

    def verdicts(self, batch: Batch, write: asyncio.Future[list[Accepted]]) -> list[Verdict]:
        """Every block's verdict once the batch's write ended, in order: AE for each stored
        block if the write failed or timed out (nothing was acknowledged)."""
        if write.cancelled() or write.exception() is not None:
            log.error(
                "message not stored",
                route=self.route.name,
                control_id=batch.admitted[0].header.control_id,
                count=len(batch.admitted),
                reason="store timeout" if write.cancelled() else "store error",
                exc_info=None if write.cancelled() else write.exception(),
            )
            answers = [self._not_stored(routed) for routed in batch.admitted]
        else:
            answers = [
                self._stored(routed, one)
                for routed, one in zip(batch.admitted, write.result(), strict=True)
            ]
        stored = iter(answers)
        return [next(stored) if verdict is None else verdict for verdict in batch.verdicts]

    def _too_large(self, block: FrameTooLarge) -> Verdict:
        """Answer a block over `max_frame_bytes` from what its first bytes say."""
        read = read_message(block.head, self._rules)
        error = AckError(
            ErrorCode.APPLICATION_INTERNAL_ERROR,
            "",
            f"message of {block.size} bytes or more exceeds the {self.route.max_frame_bytes} limit",
        )
        refusal = Refusal(Outcome.REJECTED, error)
        if isinstance(read, Unreadable):
            return self._refuse(refusal, None, UNREADABLE_CODEC)
        return self._refuse(refusal, read.header, read.codec)

    def _incoming(self, routed: RoutedMessage, peer: str, received_at: float) -> Incoming:
        header = routed.header
        return Incoming(
            route=self.route.name,
            peer=peer,
            received_at=received_at,
            sending_application=header.sending_application,
            sending_facility=header.sending_facility,
            control_id=header.control_id,
            message_type=header.type_and_trigger,
            content_hash=content_hash(routed.message),
            raw=routed.raw,
            ack=self._ack(header, Outcome.ACCEPTED, routed.codec) or b"",
            decisions=routed.decisions,
            dropped=routed.dropped,
            patient=patient_keys_of(routed.message),
        )

    def _not_stored(self, routed: RoutedMessage) -> Verdict:
        not_stored = AckError(
            ErrorCode.APPLICATION_INTERNAL_ERROR, "", "message not stored, resend it"
        )
        return self._refuse(Refusal(Outcome.ERROR, not_stored), routed.header, routed.codec)

    def _stored(self, routed: RoutedMessage, accepted: Accepted) -> Verdict:
        header = routed.header
        if accepted.duplicate and not accepted.same_content:
            other_content = AckError(
                ErrorCode.DUPLICATE_KEY,
                "MSH^1^10",
                "control id already received with other content",
            )
            return self._refuse(Refusal(Outcome.REJECTED, other_content), header, routed.codec)
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


class Storing:
    """One batch's write under way. A store not answering (a database cut off, a disk hung)
    must not keep the senders waiting past their own ACK timeout: at `store_timeout_s` the
    write is given up and the batch answered AE; a resend is safe (a commit that lands later
    makes it a duplicate, answered with the original ACK)."""

    __slots__ = ("_abandoned", "_batch", "_done", "_intake", "_timer", "_write")

    def __init__(
        self,
        intake: Intake,
        batch: Batch,
        write: asyncio.Future[list[Accepted]],
        done: Callable[[Storing], None],
    ) -> None:
        self._intake, self._batch, self._write, self._done = intake, batch, write, done
        self._abandoned = False
        self._timer = asyncio.get_running_loop().call_later(intake.store_timeout_s, write.cancel)
        write.add_done_callback(self._ended)

    def verdicts(self) -> list[Verdict]:
        """Every block's verdict, in order (once `done` was called)."""
        return self._intake.verdicts(self._batch, self._write)

    def abandon(self) -> None:
        """Give the write up without calling `done` (the engine stops: its grace is over)."""
        self._abandoned = True
        self._write.cancel()

    def _ended(self, write: asyncio.Future[list[Accepted]]) -> None:
        self._timer.cancel()
        if not self._abandoned:
            self._done(self)


def content_hash(message: Message) -> bytes:
    """Hash of the content without MSH-7, so a resend with a fresh timestamp still matches."""
    fields = message.texts[0].split(message.separators.field)
    if len(fields) > 6:
        fields[6] = ""
    text = "\r".join([message.separators.field.join(fields), *message.texts[1:]])
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
