"""Field paths: parsing, reading and writing one value, every other byte kept."""

from __future__ import annotations

import pytest

from engine.hl7.message import Message
from engine.hl7.path import FieldPath

TEXT = (
    "MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240101||ADT^A01|C1|P|2.5\r"
    "PID|1||IPP1^^^HOSP^PI~NIR1^^^INS&1.2&ISO^INS||DOE^JOHN\r"
    "PV1|1|I|CARDIO^101^B\r"
)


def message(text: str = TEXT) -> Message:
    return Message.parse(text)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("MSH-5", FieldPath("MSH", 5)),
        ("pv1-3-1", FieldPath("PV1", 3, None, 1)),
        ("PV1-3.2", FieldPath("PV1", 3, None, 2)),
        ("PID-3[2]-4-2", FieldPath("PID", 3, 2, 4, 2)),
        ("ZFD-6", FieldPath("ZFD", 6)),
    ],
)
def test_paths_parse(text: str, parsed: FieldPath) -> None:
    assert FieldPath.parse(text) == parsed
    assert FieldPath.parse(str(parsed)) == parsed


@pytest.mark.parametrize("text", ["MSH", "MSH-0", "MSH-1", "MSH-2", "PID-3[0]", "PID/3", "P1-3"])
def test_bad_paths_say_what_a_path_looks_like(text: str) -> None:
    with pytest.raises(ValueError, match="MSH"):
        FieldPath.parse(text)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("MSH-3", "PAS"),
        ("MSH-9-2", "A01"),
        ("PID-3", "IPP1^^^HOSP^PI"),  # the first repetition
        ("PID-3[2]-4-2", "1.2"),
        ("PID-3[3]", ""),
        ("PV1-3-2", "101"),
        ("PV1-44", ""),
        ("ZFD-1", None),  # no such segment
    ],
)
def test_reading(path: str, value: str | None) -> None:
    assert FieldPath.parse(path).read(message()) == value


@pytest.mark.parametrize(
    ("path", "value", "segment"),
    [
        ("MSH-5", "LIS", "MSH|^~\\&|PAS|HOSP|LIS|HOSP|20240101||ADT^A01|C1|P|2.5"),
        ("PV1-3-1", "CARD", "PV1|1|I|CARD^101^B"),
        ("PV1-3-5", "X", "PV1|1|I|CARDIO^101^B^^X"),
        ("PV1-5", "V", "PV1|1|I|CARDIO^101^B||V"),
        ("PID-3", "ONLY", "PID|1||ONLY||DOE^JOHN"),  # a whole field: every repetition
        ("PID-3[2]-4-2", "9.9", "PID|1||IPP1^^^HOSP^PI~NIR1^^^INS&9.9&ISO^INS||DOE^JOHN"),
        ("PID-3[3]-1", "N", "PID|1||IPP1^^^HOSP^PI~NIR1^^^INS&1.2&ISO^INS~N||DOE^JOHN"),
        ("PID-5-2-3", "Z", "PID|1||IPP1^^^HOSP^PI~NIR1^^^INS&1.2&ISO^INS||DOE^JOHN&&Z"),
    ],
)
def test_writing_changes_that_value_alone(path: str, value: str, segment: str) -> None:
    written = message()
    assert FieldPath.parse(path).write(written, value)
    before, after = TEXT.split("\r"), written.to_text().split("\r")
    changed = [index for index, text in enumerate(after) if text != before[index]]
    assert len(changed) == 1 and after[changed[0]] == segment


def test_writing_uses_the_message_delimiters_and_needs_the_segment() -> None:
    written = message(TEXT.replace("|", "#").replace("^", "$").replace("MSH#$~\\&", "MSH#$~\\&"))
    assert FieldPath.parse("PV1-3-2").write(written, "202")
    assert written.texts[2] == "PV1#1#I#CARDIO$202$B"
    assert not FieldPath.parse("ZBE-1").write(written, "x")
