"""The lazy ER7 view over generated text and generated MSH-1/MSH-2 delimiters.

Any text either parses or raises `MessageFormatError`, and what parses reads (header,
fields, repetitions, components) without raising. A message written with any valid
delimiters reads so too and comes back from `to_text` exactly as written, CR-terminated
whatever its line breaks were; replacing one field
leaves every other segment and every other field as it was; a value escaped with the
message's own delimiters stays one field and reads back unescaped as written.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine.hl7.escape import escape, unescape
from engine.hl7.header import Header
from engine.hl7.message import (
    DEFAULT_ENCODING_CHARACTERS,
    Message,
    MessageFormatError,
    Separators,
    component,
)

pytestmark = pytest.mark.system

LINE_BREAKS = "\r\n"
# Delimiters real feeds use, and some no feed should (a space, a tab, NUL, a letter).
DELIMITERS = string.punctuation + " \t\x00\x7f§¤éZ"
texts = st.text(st.characters(exclude_characters=LINE_BREAKS), max_size=30)
words = st.text("AZaz09 .-'\"\x00\téŒ€\u2019", max_size=6)


@st.composite
def headers(draw: st.DrawFn) -> tuple[str, Separators]:
    """`MSH` with MSH-1 and a MSH-2 of 2 to 5 characters, and the separators they declare."""
    chosen = draw(st.lists(st.sampled_from(DELIMITERS), min_size=6, max_size=6, unique=True))
    field, encoding, truncation = chosen[0], chosen[1:5], chosen[5]
    assume(not field.isalnum())
    length = draw(st.integers(2, 5))
    declared = "".join(encoding)[:length] if length < 5 else "".join(encoding) + truncation
    effective = declared[:4] + DEFAULT_ENCODING_CHARACTERS[len(declared[:4]) :]
    assume(len(set(field + effective)) == 5)
    separators = Separators(field, *effective)
    return f"MSH{field}{declared}", separators


def structured(separators: Separators) -> st.SearchStrategy[str]:
    """Text made mostly of the delimiters, so that fields, repetitions, components and
    escape sequences of every shape occur."""
    alphabet = st.sampled_from(
        [separators.field, *separators.encoding_characters, "A", "9", " ", '""', "\\X41\\"]
    )
    return st.lists(st.one_of(alphabet, words), max_size=10).map("".join)


@st.composite
def messages(draw: st.DrawFn) -> tuple[list[str], Separators]:
    """The segments of a message (MSH first, none empty) and its separators."""
    header, separators = draw(headers())
    msh = f"{header}{separators.field}APP{draw(structured(separators))}"
    names = st.sampled_from(["PID", "ZFD", "EVN", "PV1", "MSH", "OBX", "X", "PIDX"])
    others = st.builds(lambda name, rest: name + rest, names, structured(separators))
    return [msh, *draw(st.lists(others, max_size=4))], separators


def read_everything(message: Message) -> None:
    """Every read the engine makes of a message, on every segment."""
    Header.from_message(message)
    separators = message.separators
    for index in range(len(message)):
        segment = message.segment_at(index)
        for number in range(len(segment.fields) + 1):
            for repetition in segment.repetitions(number):
                for part in repetition.split(separators.component):
                    unescape(part, separators)
                component(segment.field(number), 2, separators.component)


@given(st.one_of(st.text(), st.text().map("MSH".__add__)))
def test_any_text_parses_or_raises_the_format_error(text: str) -> None:
    try:
        message = Message.parse(text)
    except MessageFormatError:
        return
    read_everything(message)


@given(messages(), st.sampled_from(["\r", "\n", "\r\n"]))
def test_a_message_reads_and_comes_back_as_written(
    message: tuple[list[str], Separators], terminator: str
) -> None:
    segments, separators = message
    parsed = Message.parse(terminator.join(segments) + terminator)
    assert parsed.separators == separators
    read_everything(parsed)
    assert parsed.to_text() == "\r".join(segments) + "\r"
    for index, text in enumerate(segments):
        fields = list(parsed.segment_at(index).fields)
        if fields[0] == "MSH":  # MSH-1, the field separator, is no text of its own
            assert fields[1] == separators.field
            del fields[1]
        assert separators.field.join(fields) == text


@given(messages(), st.data())
def test_a_field_replaced_changes_that_field_alone(
    message: tuple[list[str], Separators], data: st.DataObject
) -> None:
    segments, separators = message
    parsed = Message.parse("\r".join(segments))
    index = data.draw(st.integers(0, len(segments) - 1), label="segment")
    before = parsed.segment_at(index)
    # MSH-1 and MSH-2 are the delimiters themselves, not values to replace.
    lowest = 3 if before.fields[0] == "MSH" else 1
    number = data.draw(st.integers(lowest, len(before.fields) + 3), label="field")
    value = data.draw(texts, label="value")
    written = escape(value, separators)
    parsed.replace(index, before.with_field(number, written))
    reparsed = Message.parse(parsed.to_text())
    assert reparsed.texts == [
        parsed.texts[index] if n == index else text for n, text in enumerate(segments)
    ]
    after = reparsed.segment_at(index)
    assert unescape(after.field(number), separators) == value
    assert len(after.fields) == max(len(before.fields), number + 1)
    for other in range(len(after.fields)):
        if other != number:
            assert after.field(other) == before.field(other)


@given(headers(), st.text())
def test_escaped_text_holds_no_delimiter_and_unescapes_to_itself(
    header: tuple[str, Separators], value: str
) -> None:
    _, separators = header
    written = escape(value, separators)
    assert unescape(written, separators) == value
    unescaped_marks = written.replace(separators.escape, "")
    for delimiter in (separators.field, separators.component, separators.repetition):
        assert delimiter not in unescaped_marks
    assert separators.subcomponent not in unescaped_marks
