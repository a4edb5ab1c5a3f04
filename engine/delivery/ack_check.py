"""Reading a downstream's acknowledgement: is it the answer to the message just sent?

Sans-IO: bytes and the sent MSH-10 in, a `Result` out. An ACK whose MSA-2 is not the sent
MSH-10, or that cannot be read as an ACK at all, raises `AckProblem`: the sender must then
close the connection, because the real answer may still arrive on it and would be taken
for the answer to the next message.

Only codes are kept from a negative ACK (MSA-1 and the ERR-3 code): MSA-3 and ERR texts
are written by the downstream and may quote patient data.
"""

from __future__ import annotations

import re

from engine.delivery.destination import Outcome, Result
from engine.errors import EngineError
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


class AckProblem(EngineError):
    """The answer is not a usable ACK of the sent message (the text is engine-written)."""


def check_ack(payload: bytes, sent_control_id: str) -> Result:
    """The result an ACK block gives for the message whose MSH-10 was `sent_control_id`."""
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
    if msa.field(2) != sent_control_id:
        raise AckProblem("mismatched ACK: MSA-2 is not the sent MSH-10")
    if outcome is Outcome.DELIVERED:
        return Result(outcome, code)
    error_code = _error_code(message)
    return Result(outcome, code, f"{code} (ERR {error_code})" if error_code else code)


def _error_code(message: Message) -> str:
    """ERR-3.1 (HL7 table 0357 code) when it looks like a code, else ''."""
    err = message.segment("ERR")
    if err is None:
        return ""
    code = component(err.field(3), 1, message.separators.component)
    return code if _ERROR_CODE.fullmatch(code) else ""
