"""Identity traits: what the engine knows of a person, checked and normalised before INSi.

INSi compares names character for character, in unaccented upper case. A name the service
cannot hold (`Æ`, `Œ`, a typographic apostrophe…) is refused here, without a call: that is an
approval test case of the national service.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass

from engine.ins.errors import InvalidTraitsError

_NAME = re.compile(r"[A-Z]+(?:(?:--|-|' ?| )[A-Z]+)*")
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-' ")
_PLACE = re.compile(r"[0-9]{5}|2[AB][0-9]{3}")
SEXES = ("M", "F")


@dataclass(frozen=True, slots=True)
class IdentityTraits:
    """The five traits of a person as the source gives them (first names in birth order)."""

    birth_name: str
    first_names: tuple[str, ...]
    sex: str
    birth_date: dt.date
    birth_place: str | None = None

    def __repr__(self) -> str:
        # Traits are patient data: a repr that slips into a log must not carry them.
        return (
            f"IdentityTraits(first_names={len(self.first_names)}, place={bool(self.birth_place)})"
        )


@dataclass(frozen=True, slots=True)
class TraitsQuery:
    """The traits sent in one INSi call: one `Prenom` text (one name, or all joined)."""

    birth_name: str
    first_name: str
    sex: str
    birth_date: dt.date
    birth_place: str | None = None

    def __repr__(self) -> str:
        return f"TraitsQuery(place={bool(self.birth_place)})"


@functools.lru_cache(maxsize=65536)  # a feed repeats its patients' names
def normalise_name(text: str, field: str) -> str:
    """Upper-case, unaccented, single-spaced; raise when a character INSi cannot hold remains."""
    if text.isascii():  # the usual case: nothing to unaccent
        bare = text
    else:
        decomposed = unicodedata.normalize("NFD", text)
        bare = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    if not set(bare) <= _ALLOWED:
        raise InvalidTraitsError(
            f"{field}: characters outside A-Z, '-', apostrophe, space", code="invalid_characters"
        )
    name = " ".join(bare.upper().split())
    if not _NAME.fullmatch(name):
        raise InvalidTraitsError(
            f"{field}: letters separated by '-', '--', apostrophe or space", code="invalid_name"
        )
    return name


def normalise_traits(traits: IdentityTraits, today: dt.date | None = None) -> IdentityTraits:
    """Return the traits as INSi expects them, or raise `InvalidTraitsError` naming the field."""
    first_names = tuple(
        token
        for first_name in traits.first_names
        for token in normalise_name(first_name, "first_names").split(" ")
    )
    if not first_names:
        raise InvalidTraitsError("first_names: at least one birth first name", code="invalid_name")
    sex = traits.sex.strip().upper()
    if sex not in SEXES:
        raise InvalidTraitsError("sex: M or F", code="invalid_sex")
    if not isinstance(traits.birth_date, dt.date) or traits.birth_date > (today or dt.date.today()):
        raise InvalidTraitsError("birth_date: a real date, not in the future", code="invalid_date")
    place = (traits.birth_place or "").strip().upper() or None
    if place is not None and not _PLACE.fullmatch(place):
        raise InvalidTraitsError("birth_place: a 5-character INSEE COG code", code="invalid_place")
    return IdentityTraits(
        birth_name=normalise_name(traits.birth_name, "birth_name"),
        first_names=first_names,
        sex=sex,
        birth_date=traits.birth_date,
        birth_place=place,
    )


def fingerprint(traits: IdentityTraits, scope: str = "") -> str:
    """Opaque key of normalised traits (sha256): equal traits share a cache entry and a call."""
    canonical = "\x1f".join(
        (
            scope,
            traits.birth_name,
            " ".join(traits.first_names),
            traits.sex,
            traits.birth_date.isoformat(),
            traits.birth_place or "",
        )
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
