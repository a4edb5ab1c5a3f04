"""Field-level differences between two messages, as a failing route test prints them."""

from __future__ import annotations

from engine.hl7.diff import differences
from engine.hl7.message import Message

BASE = (
    "MSH|^~\\&|A|B|C|D|2024||ADT^A28|1|P|2.5\r"
    "PID|1||X^^^H^PI||DOE^JO\r"
    "OBX|1|NM|a||5\r"
    "OBX|2|NM|b||6\r"
)


def diff(expected: str, actual: str) -> list[str]:
    return differences(Message.parse(expected), Message.parse(actual))


def test_equal_messages_have_no_difference() -> None:
    assert diff(BASE, BASE) == []


def test_fields_are_named_with_their_segment_occurrence() -> None:
    actual = BASE.replace("|C|", "|Z|").replace("OBX|2|NM|b||6", "OBX|2|NM|b||7")
    assert diff(BASE, actual) == ['MSH-5: expected "C", got "Z"', 'OBX[2]-5: expected "6", got "7"']


def test_missing_extra_and_replaced_segments() -> None:
    shorter = BASE.replace("OBX|2|NM|b||6\r", "")
    assert diff(BASE, shorter) == ['segment 4 (OBX[2]): missing: "OBX|2|NM|b||6"']
    assert diff(shorter, BASE) == ['segment 4 (OBX[2]): not expected: "OBX|2|NM|b||6"']
    replaced = BASE.replace("PID|1||X^^^H^PI||DOE^JO", "PV1|1|I")
    assert diff(BASE, replaced) == ['segment 2: expected "PID|1||X^^^H^PI||DOE^JO", got "PV1|1|I"']


def test_long_values_are_cut() -> None:
    long = BASE.replace("DOE^JO", "D" * 100)
    (line,) = diff(BASE, long)
    assert line.startswith('PID-5: expected "DOE^JO", got "DDD') and line.endswith('…"')
