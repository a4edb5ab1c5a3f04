"""The matricule INS: 13 characters and a 2-digit key checked with the mod-97 rule."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.ins.errors import MatriculeError

_BODY = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}")
_KEY = re.compile(r"[0-9]{2}")


def compute_key(body: str) -> str:
    """Key of a 13-character matricule: 97 - (N mod 97), Corsica's 2A/2B read as 19/18."""
    if not _BODY.fullmatch(body):
        raise MatriculeError("matricule must be 13 characters (digits, 2A or 2B for Corsica)")
    number = int(body.replace("2A", "19").replace("2B", "18"))
    return f"{97 - number % 97:02d}"


@dataclass(frozen=True, slots=True)
class Matricule:
    """A matricule INS whose key has been checked; construct it with `Matricule.parse`."""

    body: str
    key: str

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise MatriculeError("matricule key must be 2 digits")
        if compute_key(self.body) != self.key:
            raise MatriculeError("matricule key does not match (mod 97)")

    @classmethod
    def parse(cls, text: str) -> Matricule:
        """Read 15 characters (13 + key), ignoring spaces as people write them."""
        compact = "".join(text.split()).upper()
        if len(compact) != 15:
            raise MatriculeError("matricule must be 15 characters (13 + 2-digit key)")
        return cls(compact[:13], compact[13:])

    def __str__(self) -> str:
        return self.body + self.key

    def __repr__(self) -> str:
        # A matricule identifies a patient: keep it out of accidental reprs in logs.
        return "Matricule(<redacted>)"
