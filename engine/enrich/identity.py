"""Reading the local identity from PID (and ZFD) where IHE PAM France 2.11 puts it.

Reading never raises for bad data: missing fields read as empty strings. Whether the traits
are usable is decided by `LocalIdentity.traits()`, which raises `InvalidTraitsError` with a
code naming the field (never its value).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from engine.enrich.carried import CarriedIns, carried_ins
from engine.enrich.reliability import Reliability, read_reliability
from engine.hl7.escape import unescape
from engine.hl7.message import HL7_NULL, Message, Segment, Separators, component
from engine.ins.errors import InvalidTraitsError
from engine.ins.traits import IdentityTraits, normalise_name, normalise_traits

LEGAL_NAME = "L"  # XPN-7 of the birth (legal) name
BIRTH_PLACE = "BDL"  # XAD-7 of the birth place
LOCAL_ID_TYPE = "PI"  # CX-5 of the local patient identifier
YES = "Y"
# The Appli carte Vitale: ZFD-7 (identity document) "AV" in PAM FR 2.11.1 and later; ZFD-5
# (collection method) "AV" as FR Core's method-collection code system writes it.
APPLI_CARTE_VITALE = "AV"


@dataclass(frozen=True, slots=True)
class FirstNames:
    """The birth first names the source claims, normalised: the first one (XPN-2) and the
    full list (XPN-3) when the source gives it."""

    first: str
    listed: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class LocalIdentity:
    """The identity a source sent, unescaped but otherwise as written."""

    pid_index: int
    legal_names: int  # PID-5 repetitions of type L: exactly one is usable
    birth_name: str
    first_name: str  # XPN-2: the first birth first name
    first_names: str  # XPN-3: the full list, space separated
    birth_date: str  # PID-7 as written
    sex: str
    birth_places: tuple[str, ...]  # XAD-9 of each PID-11 BDL repetition ('' when unknown)
    birth_cities: tuple[str, ...]  # XAD-3 of the same repetitions ('' when not named)
    status: str  # PID-32 as written (unescaped), for the record
    reliability: Reliability
    local_id: str | None
    ins: tuple[CarriedIns, ...]
    document: str  # ZFD-7: the identity document checked
    collection_method: str  # ZFD-5: how the identity was collected
    identity_unknown: bool  # PID-31 = Y
    lunar_birth_date: bool  # ZFD-1 valued: the birth date is partly unknown
    birth_date_corrected: bool  # ZFD-4 = Y: the local birth date is not INSi's

    def __repr__(self) -> str:
        return f"LocalIdentity(status={self.reliability!r}, ins={len(self.ins)})"

    def traits(self, today: dt.date | None = None) -> IdentityTraits:
        """The traits normalised as INSi expects them, or `InvalidTraitsError`."""
        if self.legal_names != 1:
            raise InvalidTraitsError(
                "PID-5: exactly one repetition of type L",
                code="no_legal_name" if not self.legal_names else "several_legal_names",
            )
        return normalise_traits(
            IdentityTraits(
                birth_name=self.birth_name,
                first_names=self._first_names(),
                sex=self.sex,
                birth_date=_birth_date(self.birth_date),
                birth_place=self._birth_place(),
            ),
            today,
        )

    def claimed_first_names(self) -> FirstNames:
        """What coherence compares with INSi's list; call after `traits()` succeeded."""
        listed = (
            tuple(normalise_name(self.first_names, "first_names").split())
            if self.first_names
            else None
        )
        if self.first_name:
            return FirstNames(normalise_name(self.first_name, "first_name"), listed)
        assert listed is not None, "traits() refuses an identity without first names"
        return FirstNames(listed[0], listed)

    def _first_names(self) -> tuple[str, ...]:
        """XPN-3 when given (it must start with XPN-2), else XPN-2 alone."""
        if not self.first_names:
            return (self.first_name,)
        if self.first_name:
            first = normalise_name(self.first_name, "first_name")
            listed = normalise_name(self.first_names, "first_names")
            if listed != first and not listed.startswith(first + " "):
                raise InvalidTraitsError(
                    "PID-5: XPN-2 is not the first name of the XPN-3 list",
                    code="first_name_not_in_list",
                )
        return (self.first_names,)

    @property
    def appli_carte_vitale(self) -> bool:
        """Collected through the Appli carte Vitale, for which the RNIV excludes calling INSi."""
        return APPLI_CARTE_VITALE in (self.document.upper(), self.collection_method.upper())

    @property
    def unchecked_birth_city(self) -> bool:
        """A BDL repetition names a city and none gives a COG: a COG INSi returns cannot be
        checked against it (the engine holds no table of communes), so none is stamped."""
        return any(self.birth_cities) and not any(self.birth_places)

    def _birth_place(self) -> str | None:
        """The one birth place the BDL repetitions agree on, None when none is known.

        Repetitions that name different places, by COG (XAD-9) or by city (XAD-3), are
        ambiguous; so is a city named without a COG beside a COG given without it, which
        would otherwise get a COG it may not be."""
        pairs = [
            (_city_key(city), cog.upper())
            for city, cog in zip(self.birth_cities, self.birth_places, strict=True)
        ]
        cogs = {cog for _, cog in pairs if cog}
        cities = {city for city, _ in pairs if city}
        paired = {city for city, cog in pairs if city and cog}
        if (
            len(cogs) > 1
            or len(cities) > 1
            or (cogs and any(city and not cog and city not in paired for city, cog in pairs))
        ):
            raise InvalidTraitsError(
                "PID-11: BDL repetitions name different birth places", code="ambiguous_place"
            )
        return cogs.pop() if cogs else None


def _city_key(city: str) -> str:
    """A city name compared as people write it: case, accents, spaces and punctuation aside."""
    decomposed = unicodedata.normalize("NFD", city)
    return "".join(c for c in decomposed if c.isalnum()).upper()


def is_full_date(text: str) -> bool:
    """PID-7 starts with a real calendar date YYYYMMDD (no unknown day or month)."""
    try:
        _birth_date(text)
    except InvalidTraitsError:
        return False
    return True


def _birth_date(text: str) -> dt.date:
    """PID-7 (DTM): a full date is required; a partial ("lunar") one cannot be searched."""
    digits = text[:8]
    if len(digits) < 8 or not digits.isdigit():
        raise InvalidTraitsError("PID-7: a full birth date YYYYMMDD", code="invalid_date")
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise InvalidTraitsError("PID-7: a real calendar date", code="invalid_date") from None


def single_pid(message: Message) -> int | None:
    """Index of the PID segment, or None unless the message has exactly one."""
    found = list(message.indexes("PID"))
    return found[0] if len(found) == 1 else None


def legal_name_index(repetitions: list[str], separators: Separators) -> int | None:
    """Position of the first PID-5 repetition of type L."""
    return next(
        (
            i
            for i, rep in enumerate(repetitions)
            if component(rep, 7, separators.component) == LEGAL_NAME
        ),
        None,
    )


def is_birth_place(repetition: str, separators: Separators) -> bool:
    """A PID-11 repetition of type BDL."""
    return component(repetition, 7, separators.component) == BIRTH_PLACE


def read_identity(message: Message, pid_index: int) -> LocalIdentity:
    """Read the identity from the PID at `pid_index` and the message's ZFD segments."""
    pid = message.segment_at(pid_index)
    separators = message.separators

    def text(value: str, number: int = 1) -> str:
        return read_text(value, separators, number)

    names = pid.repetitions(5)
    legal = legal_name_index(names, separators)
    legal_name = names[legal] if legal is not None else ""
    birth_places = [place for place in pid.repetitions(11) if is_birth_place(place, separators)]
    source = source_flags(message)
    return LocalIdentity(
        pid_index=pid_index,
        legal_names=sum(component(name, 7, separators.component) == LEGAL_NAME for name in names),
        # XPN-1 is an FN: the surname is its first subcomponent.
        birth_name=text(
            component(legal_name, 1, separators.component).split(separators.subcomponent)[0]
        ),
        first_name=text(legal_name, 2),
        first_names=text(legal_name, 3),
        birth_date=text(pid.field(7)),
        sex=text(pid.field(8)),
        birth_places=tuple(text(place, 9) for place in birth_places),
        birth_cities=tuple(text(place, 3) for place in birth_places),
        status=unescape(pid.field(32), separators),
        reliability=read_reliability(pid.field(32), separators),
        local_id=local_id_of(pid),
        ins=carried_ins(pid),
        document=source.document,
        collection_method=source.collection_method,
        identity_unknown=text(pid.field(31)).upper() == YES,
        lunar_birth_date=source.lunar_birth_date,
        birth_date_corrected=source.birth_date_corrected,
    )


@dataclass(frozen=True, slots=True)
class SourceFlags:
    """What the message's ZFD segments say of the identity, every ZFD read: a flag set in
    any of them counts (a second ZFD is no way to hide a lunar or corrected birth date)."""

    document: str  # the first ZFD-7 valued: the identity document checked
    collection_method: str  # the first ZFD-5 valued: how the identity was collected
    lunar_birth_date: bool  # ZFD-1 valued (any component): the birth date is partly unknown
    birth_date_corrected: bool  # ZFD-4 = Y: the local birth date is not INSi's


def source_flags(message: Message) -> SourceFlags:
    separators = message.separators
    zfds = [message.segment_at(index) for index in message.indexes("ZFD")]

    def values(number: int) -> list[str]:
        return [read_text(zfd.field(number), separators) for zfd in zfds]

    return SourceFlags(
        document=next((value for value in values(7) if value), ""),
        collection_method=next((value for value in values(5) if value), ""),
        # ZFD-1 is an NA (day^month^year): a year alone ('^^1975') is a lunar date too.
        lunar_birth_date=any(is_valued(zfd.field(1), separators) for zfd in zfds),
        birth_date_corrected=any(value.upper() == YES for value in values(4)),
    )


def is_valued(value: str, separators: Separators) -> bool:
    """Some component of the field holds a value (HL7's null `""` is none)."""
    count = value.count(separators.component) + 1
    return any(read_text(value, separators, number) for number in range(1, count + 1))


def read_text(value: str, separators: Separators, number: int = 1) -> str:
    """Component `number` of a field, unescaped and stripped; HL7's null `""` reads as ''."""
    value = unescape(component(value, number, separators.component), separators).strip()
    return "" if value == HL7_NULL else value


def local_id_of(pid: Segment) -> str | None:
    """The local patient identifier: CX-1 of the first PID-3 repetition of type PI."""
    separators = pid.separators
    for cx in pid.repetitions(3):
        if component(cx, 5, separators.component) == LOCAL_ID_TYPE:
            return unescape(component(cx, 1, separators.component), separators)
    return None
