"""Reading a downstream's acknowledgement: is it the answer to the message just sent?

Sans-IO: the ACK's bytes and the sent message's bytes in, a `Result` out. An ACK whose
MSA-2 is not the sent MSH-10 (`MismatchedAck`), or that cannot be read as an ACK at all,
raises `AckProblem`: the sender must then close the connection, because the real answer
may still arrive on it and would be taken for the answer to the next message.

A receiver may echo a control id outside ASCII in another charset than it was sent in (it
decoded the message with its own, and its ACK often has no MSH-18). So MSA-2 matches when
one reading of its bytes equals one reading of the sent MSH-10's bytes, each read as
Latin-1 (the bytes themselves), windows-1252, UTF-8 or the charset its own MSH-18 names.
An ASCII control id reads the same in all of them: it must be equal, as before.

Only codes are kept from a negative ACK (MSA-1 and the ERR-3 code): MSA-3 and ERR texts
are written by the downstream and may quote patient data.
"""

from __future__ import annotations

import contextlib
import re

from engine.delivery.destination import Outcome, Result
from engine.errors import EngineError
from engine.hl7.charset import codec_for, declared_charset, is_known
from engine.hl7.header import header_field
from engine.hl7.message import Message, MessageFormatError, component

_OUTCOMES = {
    "AA": Outcome.DELIVERED,
    "CA": Outcome.DELIVERED,
    "AE": Outcome.RETRY,
    "CE": Outcome.RETRY,
    "AR": Outcome.PARK,
    "CR": Outcome.PARK,
}
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,20}")
_READINGS = ("latin-1", "cp1252", "utf-8")


class AckProblem(EngineError):
    """The answer is not a usable ACK of the sent message (the text is engine-written)."""


class MismatchedAck(AckProblem):
    """A readable ACK, of another message than the one sent."""


def check_ack(payload: bytes, sent: bytes) -> Result:
    """The result an ACK block gives for the message `sent` (its bytes as sent)."""
    try:
        message = Message.parse(payload.decode("latin-1"))
    except MessageFormatError:
        raise AckProblem("garbled ACK: not an HL7 message") from None
    msa = message.segment("MSA")
    if msa is None:
        raise AckProblem("garbled ACK: no MSA segment")
    code = msa.field(1).upper()
    outcome = _OUTCOMES.get(code)
    if outcome is None:
        raise AckProblem("garbled ACK: unknown MSA-1 code")
    echoed, sent_id = msa.field(2).encode("latin-1"), header_field(sent, 10)
    if echoed != sent_id:  # the usual echo is byte for byte: decode only when it is not
        ack_charset = component(message.msh.field(18), 1, message.separators.component)
        if not _readings(echoed, ack_charset) & _readings(sent_id, declared_charset(sent)):
            raise MismatchedAck("mismatched ACK: MSA-2 is not the sent MSH-10")
    if outcome is Outcome.DELIVERED:
        return Result(outcome, code)
    error_code = _error_code(message)
    return Result(outcome, code, f"{code} (ERR {error_code})" if error_code else code)


def _readings(raw: bytes, label: str) -> set[str]:
    """What a control id's bytes say in each charset its sender may have meant (`label`:
    the MSH-18 of the message it came in)."""
    found = set()
    for codec in (*_READINGS, codec_for(label)) if is_known(label) else _READINGS:
        with contextlib.suppress(UnicodeDecodeError):  # bytes this charset cannot mean
            found.add(raw.decode(codec))
    return found


def _error_code(message: Message) -> str:
    """ERR-3.1 (HL7 table 0357 code) when it looks like a code, else ''."""
    err = message.segment("ERR")
    if err is None:
        return ""
    code = component(err.field(3), 1, message.separators.component)
    return code if _ERROR_CODE.fullmatch(code) else ""
