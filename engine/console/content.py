"""A message's bytes as received beside the bytes a destination got, segment by segment,
with the changed fields marked: how the vigilance team sees what enrichment did to PID.

Only the vigilance role reaches this (it is patient data), and each view is audited.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from engine.config.settings import RouteSettings
from engine.hl7.charset import CharsetError, CharsetPolicy, decode


@dataclass(frozen=True)
class Cell:
    """A field of a segment (with its leading separator) and whether it differs."""

    text: str
    changed: bool = False


@dataclass(frozen=True)
class Line:
    """One segment of each side (either may be absent) and how the two compare."""

    kind: str  # same, changed, added, removed
    left: tuple[Cell, ...]
    right: tuple[Cell, ...]


def readable(raw: bytes, route: RouteSettings | None) -> str:
    """The text of stored bytes, decoded as the route decodes them (latin-1 if it cannot)."""
    policy = (
        CharsetPolicy(route.charset, route.default_charset, route.fallback_charset)
        if route is not None
        else CharsetPolicy()
    )
    try:
        return decode(raw, policy).text
    except CharsetError:
        return raw.decode("latin-1")


def compare(received: str, delivered: str) -> list[Line]:
    """Segments aligned by difflib; a segment present on both sides but changed has its
    differing fields marked."""
    left = _segments(received)
    right = _segments(delivered)
    lines: list[Line] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for operation, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if operation == "equal":
            lines.extend(Line("same", _plain(s), _plain(s)) for s in left[a_start:a_end])
            continue
        olds, news = left[a_start:a_end], right[b_start:b_end]
        for index in range(max(len(olds), len(news))):
            old = olds[index] if index < len(olds) else None
            new = news[index] if index < len(news) else None
            if old is not None and new is not None and old[:3] == new[:3]:
                lines.append(Line("changed", *_marked(old, new)))
            elif old is not None and new is not None:
                lines.append(Line("changed", _plain(old, True), _plain(new, True)))
            elif old is not None:
                lines.append(Line("removed", _plain(old, True), ()))
            elif new is not None:
                lines.append(Line("added", (), _plain(new, True)))
    return lines


def _segments(text: str) -> list[str]:
    return [segment for segment in text.replace("\n", "\r").split("\r") if segment]


def _plain(segment: str, changed: bool = False) -> tuple[Cell, ...]:
    return (Cell(segment, changed),)


def _marked(old: str, new: str) -> tuple[tuple[Cell, ...], tuple[Cell, ...]]:
    """Both segments split at `|`, each field marked when it differs from the other side."""
    separator = "|"
    left, right = old.split(separator), new.split(separator)
    width = max(len(left), len(right))
    left += [""] * (width - len(left))
    right += [""] * (width - len(right))
    cells_left, cells_right = [], []
    for index, (a, b) in enumerate(zip(left, right, strict=True)):
        prefix = separator if index else ""
        cells_left.append(Cell(prefix + a, a != b))
        cells_right.append(Cell(prefix + b, a != b))
    return _trim(cells_left), _trim(cells_right)


def _trim(cells: list[Cell]) -> tuple[Cell, ...]:
    """Drop the padding added to the shorter side (empty trailing fields)."""
    while cells and cells[-1].text in ("|", ""):
        cells.pop()
    return tuple(cells)
