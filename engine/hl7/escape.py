"""HL7 v2 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\) written with a message's own delimiters.

Values read from a field are unescaped before they are compared; values written into a field
are escaped so that a delimiter inside a name never splits the field. The escape character
and the delimiters are the ones MSH-1/MSH-2 declare, never the defaults.
"""

from __future__ import annotations

import functools

from engine.hl7.message import Separators


@functools.cache
def _codes(separators: Separators) -> dict[str, str]:
    """Delimiter → its escape code letter."""
    return {
        separators.field: "F",
        separators.component: "S",
        separators.subcomponent: "T",
        separators.repetition: "R",
        separators.escape: "E",
    }


def escape(value: str, separators: Separators) -> str:
    """Replace every delimiter in `value` by its escape sequence."""
    codes = _codes(separators)
    if not any(delimiter in value for delimiter in codes):
        return value
    marker = separators.escape
    return "".join(f"{marker}{codes[char]}{marker}" if char in codes else char for char in value)


def unescape(value: str, separators: Separators) -> str:
    """Replace the five delimiter escape sequences by the delimiters they stand for.

    Other sequences (`\\X..\\`, `\\H\\`, `\\.br\\`…) are kept as written: a name holding them
    then fails the trait checks instead of being guessed at.
    """
    marker = separators.escape
    if marker not in value:
        return value
    delimiters = {code: char for char, code in _codes(separators).items()}
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if (
            char == marker
            and i + 2 < len(value)
            and value[i + 2] == marker
            and value[i + 1] in delimiters
        ):
            out.append(delimiters[value[i + 1]])
            i += 3
        else:
            out.append(char)
            i += 1
    return "".join(out)
