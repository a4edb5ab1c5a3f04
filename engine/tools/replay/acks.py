"""Reading an acknowledgement: MSA-1 code, MSA-2 echoed control id, MSA-3 text.

Read with the lazy view, so an ACK costs microseconds whatever else it carries. The text is
what the receiver chose to say; it is shown as it is, bounded in length.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import EngineError
from engine.hl7.ack import AckCode
from engine.hl7.charset import CharsetError, codec_for, declared_charset
from engine.hl7.message import Message

MAX_TEXT = 80
ACCEPTED = frozenset({AckCode.AA, AckCode.CA})


class AckFormatError(EngineError):
    """The answer is not an ACK the sender can correlate: no MSA, or an unknown MSA-1."""


@dataclass(frozen=True, slots=True)
class ReceivedAck:
    code: AckCode
    control_id: str  # MSA-2: must be the MSH-10 of the message sent
    text: str  # MSA-3

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED


def read_ack(payload: bytes) -> ReceivedAck:
    """Parse an ACK payload; raise `AckFormatError` naming what is missing."""
    try:
        text = payload.decode(codec_for(declared_charset(payload) or "8859/1"))
    except (CharsetError, UnicodeDecodeError):
        text = payload.decode("latin-1")
    try:
        msa = Message.parse(text).segment("MSA")
    except EngineError as error:
        raise AckFormatError(f"answer is not an HL7 message: {error}") from None
    if msa is None:
        raise AckFormatError("answer has no MSA segment")
    code = msa.field(1).strip()
    if code not in AckCode.__members__:
        raise AckFormatError(f"unknown MSA-1 acknowledgement code {code[:4]!r}")
    return ReceivedAck(AckCode(code), msa.field(2), msa.field(3)[:MAX_TEXT])
