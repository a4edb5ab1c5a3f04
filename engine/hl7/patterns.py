"""Wildcard patterns over header values: `ADT^A28`, `ADT^*`, `LAB*`.

A route's and a destination's `accept`, and a filter's criteria, are lists of these:
`*` and `?` wildcards (shell style), compared without regard to case. A value matches the
list when it matches any pattern of it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable


class Patterns:
    """A list of wildcard patterns, compiled once."""

    __slots__ = ("_everything", "_regex", "texts")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.texts = tuple(patterns)
        self._everything = "*" in self.texts  # a destination's default: no regex to run
        alternatives = "|".join(f"(?:{fnmatch.translate(p.upper())})" for p in self.texts)
        self._regex = re.compile(alternatives or "(?!)")

    def matches(self, value: str) -> bool:
        return self._everything or self._regex.match(value.upper()) is not None

    def message_types(self) -> Patterns:
        """The MSH-9.1 part of `TYPE^EVENT` patterns: which message types they name."""
        return Patterns(text.split("^")[0] for text in self.texts)
