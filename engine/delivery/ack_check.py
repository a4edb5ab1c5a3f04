"""Reading a downstream's acknowledgement: is it the answer to the message just sent?

Sans-IO: the ACK's bytes and the sent message's bytes in, a `Result` out. The ACK is read
as bytes, only the segments and fields the answer needs (the same reading as
`engine.hl7.message`, without building a message: one runs per delivered message). An ACK whose
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
import functools
import re

from engine.delivery.destination import Outcome, Result
from engine.errors import EngineError
from engine.hl7.charset import codec_for, declared_charset, is_known
from engine.hl7.header import header_field
from engine.hl7.message import SEGMENT_TERMINATOR, MessageFormatError, Separators, component

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
    if b"\n" in payload:
        payload = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    segments = [segment for segment in payload.split(_TERMINATOR) if segment]
    if not segments:
        raise AckProblem("garbled ACK: not an HL7 message")
    header = segments[0]
    end = header.find(header[3:4], 4)  # MSH-2's end
    try:
        separators = _separators(header if end == -1 else header[:end])
    except MessageFormatError:
        raise AckProblem("garbled ACK: not an HL7 message") from None
    field = separators.field.encode("latin-1")
    msa = _segment(segments, b"MSA", field)
    if msa is None:
        raise AckProblem("garbled ACK: no MSA segment")
    code = _field(msa, 1, field).decode("latin-1").upper()
    outcome = _OUTCOMES.get(code)
    if outcome is None:
        raise AckProblem("garbled ACK: unknown MSA-1 code")
    echoed, sent_id = _field(msa, 2, field), header_field(sent, 10)
    if echoed != sent_id:  # the usual echo is byte for byte: decode only when it is not
        # MSH-n is the header's field n - 1 (MSH-1 is the separator itself).
        msh_18 = _field(header, 17, field).decode("latin-1")
        ack_charset = component(msh_18, 1, separators.component)
        if not _readings(echoed, ack_charset) & _readings(sent_id, declared_charset(sent)):
            raise MismatchedAck("mismatched ACK: MSA-2 is not the sent MSH-10")
    if outcome is Outcome.DELIVERED:
        return Result(outcome, code)
    error_code = _error_code(segments, separators)
    return Result(outcome, code, f"{code} (ERR {error_code})" if error_code else code)


_TERMINATOR = SEGMENT_TERMINATOR.encode("ascii")


@functools.lru_cache(maxsize=64)
def _separators(start: bytes) -> Separators:
    """The separators an MSH segment's start (`MSH|^~\\&`) declares: a receiver's ACKs all
    start alike."""
    return Separators.from_header(start.decode("latin-1"))


def _segment(segments: list[bytes], name: bytes, field: bytes) -> bytes | None:
    """The first segment named `name`."""
    for segment in segments:
        if segment.startswith(name) and (len(segment) == 3 or segment[3:4] == field):
            return segment
    return None


def _field(segment: bytes, number: int, field: bytes) -> bytes:
    """Part `number` of a segment split on its fields (b"" when absent): field `number`,
    or MSH-`number + 1` of a header."""
    fields = segment.split(field)
    return fields[number] if number < len(fields) else b""


def _readings(raw: bytes, label: str) -> set[str]:
    """What a control id's bytes say in each charset its sender may have meant (`label`:
    the MSH-18 of the message it came in)."""
    found = set()
    for codec in (*_READINGS, codec_for(label)) if is_known(label) else _READINGS:
        with contextlib.suppress(UnicodeDecodeError):  # bytes this charset cannot mean
            found.add(raw.decode(codec))
    return found


def _error_code(segments: list[bytes], separators: Separators) -> str:
    """ERR-3.1 (HL7 table 0357 code) when it looks like a code, else ''."""
    field = separators.field.encode("latin-1")
    err = _segment(segments, b"ERR", field)
    if err is None:
        return ""
    code = component(_field(err, 3, field).decode("latin-1"), 1, separators.component)
    return code if _ERROR_CODE.fullmatch(code) else ""
