"""HL7 v2 structure validation with hl7apy, and where the first problem is.

hl7apy builds the message's tree for an HL7 version and checks it against that version's
reference: required segments and fields, how often each may repeat, data types, lengths,
fields a segment does not define. This is its runtime job, on demand: it costs tens of
milliseconds per message, where the engine's lazy view costs microseconds.

Z segments are left out: they are site-defined (PAM FR's ZFD, ZBE), HL7 v2.5 knows none,
and hl7apy places them badly (a ZFD between PID and MRG breaks the grouping of an A40).

hl7apy's errors name elements and quote values. The first problem becomes an ERR (HL7 table
0357 code, ERL location, a short text) that never carries a value from the message: a
problem hl7apy does not place is located by parsing each segment, then each field, alone.
"""

from __future__ import annotations

import re

import hl7apy
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import ValidationError
from hl7apy.parser import parse_field, parse_message, parse_segment

from engine.hl7.ack import AckError, ErrorCode
from engine.hl7.message import Message

VERSIONS = frozenset(hl7apy.SUPPORTED_LIBRARIES)
_FIELD = re.compile(r"\b([A-Z][A-Z0-9]{2})_([0-9]+)\b")
_MISSING = re.compile(r"Missing required child \w+\.(\w+)")
_LIMIT = re.compile(r"Child limit exceeded \w+\.(\w+)")
_SEGMENT = re.compile(r"<Segment ([A-Z][A-Z0-9]{2})>")


def first_problem(message: Message, version: str) -> AckError | None:
    """The first way `message` breaks HL7 `version` (a key of VERSIONS), or None."""
    texts = [message.msh.with_field(12, version).text]
    texts += [text for text in message.texts[1:] if not text.startswith("Z")]
    try:
        parse_message(
            "\r".join(texts), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True
        ).validate()
    except ValidationError as error:
        return _from_validation(str(error))
    except Exception:  # hl7apy refuses while parsing (types, lengths, counts): find where
        return _locate(message, texts, version)
    return None


def _from_validation(text: str) -> AckError:
    missing, limit, field = _MISSING.search(text), _LIMIT.search(text), _FIELD.search(text)
    if missing and field:
        segment, number = field.groups()
        return AckError(
            ErrorCode.REQUIRED_FIELD_MISSING,
            f"{segment}^1^{number}",
            f"{segment}-{number} required field missing",
        )
    if missing:
        return AckError(
            ErrorCode.SEGMENT_SEQUENCE, _segment_id(missing[1]), f"{missing[1]} missing"
        )
    if limit and not field:
        return AckError(
            ErrorCode.SEGMENT_SEQUENCE, _segment_id(limit[1]), f"{limit[1]} repeats too often"
        )
    if field:
        segment, number = field.groups()
        return AckError(
            ErrorCode.DATA_TYPE, f"{segment}^1^{number}", f"{segment}-{number} not valid here"
        )
    return AckError(ErrorCode.SEGMENT_SEQUENCE, "", "message structure not valid")


def _locate(message: Message, texts: list[str], version: str) -> AckError:
    separators = message.separators
    characters = {
        "FIELD": separators.field,
        "COMPONENT": separators.component,
        "REPETITION": separators.repetition,
        "ESCAPE": separators.escape,
        "SUBCOMPONENT": separators.subcomponent,
    }
    seen: dict[str, int] = {}
    for text in texts:
        name = text[:3]
        seen[name] = occurrence = seen.get(name, 0) + 1
        try:
            parse_segment(
                text,
                version=version,
                encoding_chars=characters,
                validation_level=VALIDATION_LEVEL.STRICT,
            )
        except Exception:  # this segment: which field?
            number = _bad_field(text.split(separators.field), name, version, characters)
            if number is None:
                return AckError(
                    ErrorCode.SEGMENT_SEQUENCE, f"{name}^{occurrence}", f"{name} not valid"
                )
            return AckError(
                ErrorCode.DATA_TYPE,
                f"{name}^{occurrence}^{number}",
                f"{name}-{number} not valid for its data type or length",
            )
    return AckError(ErrorCode.SEGMENT_SEQUENCE, "", "segments not in a valid order or number")


def _bad_field(
    fields: list[str], name: str, version: str, characters: dict[str, str]
) -> int | None:
    offset = 1 if name == "MSH" else 0  # split MSH: index 1 is MSH-2
    for index, value in enumerate(fields[1:], start=1):
        number = index + offset
        if not value or (offset and number <= 2):  # MSH-2: the delimiters
            continue
        try:
            parse_field(
                value,
                name=f"{name}_{number}",
                version=version,
                encoding_chars=characters,
                validation_level=VALIDATION_LEVEL.STRICT,
            )
        except Exception:  # the field hl7apy refuses
            return number
    return None


def _segment_id(name: str) -> str:
    """A segment's ERL (its id); a group has none."""
    return name if len(name) == 3 else ""
