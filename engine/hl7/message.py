"""A lazy, text-preserving view of an HL7 v2 message.

The hot path never builds an object tree: the message is split into segment strings once,
and a segment into fields only when a field is asked for. Replacing a segment changes that
segment's text alone, so every other byte of the message (separators, other segments,
their order) survives a round trip exactly.

Field numbering follows HL7: `segment.field(1)` is the first field after the name; for MSH,
field 1 is the field separator itself and field 2 the encoding characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.errors import EngineError

SEGMENT_TERMINATOR = "\r"
DEFAULT_ENCODING_CHARACTERS = "^~\\&"
HL7_NULL = '""'  # a value known to be unknown (or to be deleted), not an empty one


class MessageFormatError(EngineError):
    """The text is not an HL7 v2 message (no MSH header, bad encoding characters)."""


@dataclass(frozen=True, slots=True)
class Separators:
    """The delimiters declared in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    @classmethod
    def from_header(cls, msh: str) -> Separators:
        """Read the separators from the start of an MSH segment."""
        if not msh.startswith("MSH") or len(msh) < 4:
            raise MessageFormatError("not an HL7 v2 message: MSH segment expected first")
        field = msh[3]
        end = msh.find(field, 4)
        encoding = msh[4 : end if end != -1 else len(msh)]
        # v2.7 adds a fifth (truncation) character; a short MSH-2 keeps the defaults, and
        # must not declare one of them for another role (`^&` would make `&` two delimiters,
        # and an ACK repeating it would be unreadable).
        chars = encoding[:4] + DEFAULT_ENCODING_CHARACTERS[len(encoding[:4]) :]
        if len(encoding) < 2 or field.isalnum() or len(set(chars + field)) < 5:
            raise MessageFormatError("invalid MSH-1/MSH-2 encoding characters")
        return cls(field, chars[0], chars[1], chars[2], chars[3])


class Segment:
    """One segment's text, split into fields on first use."""

    __slots__ = ("_fields", "separators", "text")

    def __init__(self, text: str, separators: Separators) -> None:
        self.text = text
        self.separators = separators
        self._fields: list[str] | None = None

    @property
    def name(self) -> str:
        return self.text[:3]

    @property
    def fields(self) -> list[str]:
        """Fields in HL7 numbering: index 0 is the segment name."""
        if self._fields is None:
            parts = self.text.split(self.separators.field)
            if parts[0] == "MSH":
                # MSH-1 is the field separator itself, so MSH-2 is parts[1].
                parts.insert(1, self.separators.field)
            self._fields = parts
        return self._fields

    def field(self, number: int) -> str:
        fields = self.fields
        return fields[number] if number < len(fields) else ""

    def repetitions(self, number: int) -> list[str]:
        value = self.field(number)
        return value.split(self.separators.repetition) if value else []

    def with_field(self, number: int, value: str) -> Segment:
        """A copy of this segment with one field replaced (padding with empty fields)."""
        fields = list(self.fields)
        while len(fields) <= number:
            fields.append("")
        fields[number] = value
        if fields[0] == "MSH":
            del fields[1]
        return Segment(self.separators.field.join(fields), self.separators)


def component(value: str, number: int, separator: str) -> str:
    """Component `number` (1-based) of a field or repetition value, or ''."""
    parts = value.split(separator)
    return parts[number - 1] if number <= len(parts) else ""


class Message:
    """An HL7 v2 message as a list of segment texts."""

    __slots__ = ("_segments", "separators", "texts")

    def __init__(self, texts: list[str], separators: Separators) -> None:
        self.texts = texts
        self.separators = separators
        self._segments: dict[int, Segment] = {}

    @classmethod
    def parse(cls, text: str) -> Message:
        """Split decoded text into segments; CR, LF and CRLF all end a segment."""
        if "\n" in text:
            text = text.replace("\r\n", "\r").replace("\n", "\r")
        texts = [segment for segment in text.split(SEGMENT_TERMINATOR) if segment]
        if not texts:
            raise MessageFormatError("not an HL7 v2 message: empty content")
        return cls(texts, Separators.from_header(texts[0]))

    def __len__(self) -> int:
        return len(self.texts)

    def segment_at(self, index: int) -> Segment:
        segment = self._segments.get(index)
        if segment is None:
            segment = self._segments[index] = Segment(self.texts[index], self.separators)
        return segment

    def indexes(self, name: str) -> Iterator[int]:
        return (
            i
            for i, text in enumerate(self.texts)
            if text.startswith(name) and (len(text) == 3 or text[3] == self.separators.field)
        )

    def segment(self, name: str) -> Segment | None:
        """The first segment with this name."""
        index = next(self.indexes(name), None)
        return None if index is None else self.segment_at(index)

    @property
    def msh(self) -> Segment:
        return self.segment_at(0)

    def replace(self, index: int, segment: Segment) -> None:
        self.texts[index] = segment.text
        self._segments[index] = segment

    def insert(self, index: int, segment: Segment) -> None:
        self.texts.insert(index, segment.text)
        self._segments = {}

    def to_text(self) -> str:
        """The message with CR-terminated segments, as HL7 over MLLP wants it."""
        return SEGMENT_TERMINATOR.join(self.texts) + SEGMENT_TERMINATOR
