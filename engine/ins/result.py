"""What one INSi call returns: a code (00/01/02), and for 00 the INS and the traits (TIQ)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from engine.ins.matricule import Matricule
from engine.ins.oids import InsOid


class CodeCR(enum.StrEnum):
    """`CodeCR` values of the traits search; anything else is an error, not a result."""

    FOUND = "00"
    NOT_FOUND = "01"
    SEVERAL = "02"

    @property
    def label(self) -> str:
        """`LibelleCR` the service writes (ASCII, unaccented)."""
        return _LABELS[self]


_LABELS = {
    CodeCR.FOUND: "OK",
    CodeCR.NOT_FOUND: "Aucune identite trouvee",
    CodeCR.SEVERAL: "Plusieurs identites trouvees",
}


@dataclass(frozen=True, slots=True)
class Ins:
    """A matricule INS with its assigning authority and, when given, its validity dates."""

    matricule: Matricule
    oid: InsOid
    valid_from: str | None = None
    valid_to: str | None = None


@dataclass(frozen=True, slots=True)
class ReturnedTraits:
    """The traits INSi holds (TIQ), kept exactly as returned: they travel with the INS."""

    birth_name: str
    first_names: tuple[str, ...]
    sex: str
    birth_date: str
    birth_place: str

    @property
    def first_names_text(self) -> str:
        """`ListePrenom` as INSi writes it (space separated)."""
        return " ".join(self.first_names)

    @property
    def birth_date_value(self) -> dt.date | None:
        """The birth date, or None for a "lunar" date (unknown day or month: not qualifiable)."""
        try:
            return dt.date.fromisoformat(self.birth_date)
        except ValueError:
            return None

    def __repr__(self) -> str:
        return "ReturnedTraits(<redacted>)"


@dataclass(frozen=True, slots=True)
class InsiResult:
    """The answer to one traits search; `ins` and `traits` are set only for 00."""

    code: CodeCR
    ins: Ins | None = None
    history: tuple[Ins, ...] = ()
    traits: ReturnedTraits | None = None
    simulated: bool = False
    called_at: dt.datetime | None = None
    """When the request was stamped (UTC): the date of an INSi verification."""
