"""HL7 escaping round-trips with default and non-default delimiters."""

import pytest

from engine.hl7.escape import escape, unescape
from engine.hl7.message import Separators

DEFAULT = Separators()
ODD = Separators(field="#", component="$", repetition="*", escape="!", subcomponent="@")


@pytest.mark.parametrize(
    ("separators", "value", "escaped"),
    [
        (DEFAULT, "D'ARC", "D'ARC"),
        (DEFAULT, "A^B&C~D|E\\F", "A\\S\\B\\T\\C\\R\\D\\F\\E\\E\\F"),
        (ODD, "A$B@C*D#E!F", "A!S!B!T!C!R!D!F!E!E!F"),
        (ODD, "A^B&C~D|E\\F", "A^B&C~D|E\\F"),
    ],
)
def test_escape_round_trip(separators: Separators, value: str, escaped: str) -> None:
    assert escape(value, separators) == escaped
    assert unescape(escaped, separators) == value


@pytest.mark.parametrize("text", ["\\X41\\", "\\.br\\", "A\\", "\\S", "\\Z\\"])
def test_unescape_keeps_sequences_it_does_not_know(text: str) -> None:
    assert unescape(text, DEFAULT) == text
