"""Addressing one value of a message: `MSH-5`, `PV1-3-1`, `PID-3[2]-4-2`.

`SEG-F` is field F of the first SEG segment; `-C` and `-S` (or `.C`, `.S`) go down to a
component and a subcomponent; `[R]` picks repetition R (1-based). Without `[R]` a path
reads the first repetition, and a whole field written without `[R]` replaces every
repetition. Values are read and written as they stand in the message (escaped); MSH-1 and
MSH-2, the delimiters themselves, are not addressable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.hl7.message import Message, Separators

_PATH = re.compile(
    r"(?P<segment>[A-Z][A-Z0-9]{2})-(?P<field>[1-9][0-9]*)(?:\[(?P<repetition>[1-9][0-9]*)\])?"
    r"(?:[-.](?P<component>[1-9][0-9]*)(?:[-.](?P<subcomponent>[1-9][0-9]*))?)?"
)
EXPECTED = "a field such as MSH-5, PV1-3-1 or PID-3[2]-4 (segment-field[repetition]-component)"


@dataclass(frozen=True, slots=True)
class FieldPath:
    segment: str
    field: int
    repetition: int | None = None  # None: the first to read, all of them to write a field
    component: int | None = None
    subcomponent: int | None = None

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        """Raises ValueError saying what a path looks like."""
        match = _PATH.fullmatch(text.strip().upper())
        if match is None:
            raise ValueError(f"{EXPECTED}, not {text!r}")
        repetition, component, subcomponent = (
            int(number) if number else None
            for number in match.group("repetition", "component", "subcomponent")
        )
        path = cls(match["segment"], int(match["field"]), repetition, component, subcomponent)
        if path.segment == "MSH" and path.field <= 2:
            raise ValueError("a field after MSH-2 (MSH-1 and MSH-2 are the delimiters)")
        return path

    @property
    def depth(self) -> int:
        """0 for a field, 1 for a component, 2 for a subcomponent."""
        return (self.component is not None) + (self.subcomponent is not None)

    def __str__(self) -> str:
        text = f"{self.segment}-{self.field}"
        if self.repetition is not None:
            text += f"[{self.repetition}]"
        for part in (self.component, self.subcomponent):
            if part is not None:
                text += f"-{part}"
        return text

    def location(self) -> str:
        """As an ERR-2 error location (ERL): `PV1^1^3^1^1` for PV1-3-1."""
        parts = [self.segment, "1", str(self.field)]
        if self.repetition is not None or self.component is not None:
            parts.append(str(self.repetition or 1))
        parts += [str(part) for part in (self.component, self.subcomponent) if part is not None]
        return "^".join(parts)

    def read(self, message: Message) -> str | None:
        """The value as written, '' when empty or absent; None when there is no such segment."""
        segment = message.segment(self.segment)
        if segment is None:
            return None
        separators = message.separators
        repetitions = segment.field(self.field).split(separators.repetition)
        value = _nth(repetitions, self.repetition or 1)
        if self.component is not None:
            value = _nth(value.split(separators.component), self.component)
        if self.subcomponent is not None:
            value = _nth(value.split(separators.subcomponent), self.subcomponent)
        return value

    def write(self, message: Message, value: str) -> bool:
        """Put `value` (already escaped) at this place; False when there is no such segment."""
        index = next(message.indexes(self.segment), None)
        if index is None:
            return False
        segment = message.segment_at(index)
        text = _replaced(segment.field(self.field), self, value, message.separators)
        message.replace(index, segment.with_field(self.field, text))
        return True


def _nth(parts: list[str], number: int) -> str:
    return parts[number - 1] if number <= len(parts) else ""


def _replaced(field: str, path: FieldPath, value: str, separators: Separators) -> str:
    """The field's text with the addressed part replaced, padding with empty parts."""
    if path.repetition is None and path.component is None:
        return value
    repetitions = field.split(separators.repetition)
    number = path.repetition or 1
    repetitions += [""] * (number - len(repetitions))
    leaf = value
    if path.component is not None:
        components = repetitions[number - 1].split(separators.component)
        components += [""] * (path.component - len(components))
        if path.subcomponent is not None:
            subcomponents = components[path.component - 1].split(separators.subcomponent)
            subcomponents += [""] * (path.subcomponent - len(subcomponents))
            subcomponents[path.subcomponent - 1] = value
            leaf = separators.subcomponent.join(subcomponents)
        components[path.component - 1] = leaf
        leaf = separators.component.join(components)
    repetitions[number - 1] = leaf
    return separators.repetition.join(repetitions)
