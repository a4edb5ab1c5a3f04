"""Persons the simulator knows: the public test persons, or a JSON file of the same shape."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.ins.matricule import Matricule
from engine.ins.oids import InsOid
from engine.ins.result import Ins, ReturnedTraits
from engine.ins.traits import IdentityTraits


class DatasetError(EngineError):
    """A persons file cannot be used (the text names the entry, never its data)."""


DEFECTS = frozenset({"matricule_key", "unknown_oid", "missing_trait"})
"""Ways the simulator can spoil a 00 answer for one person, as a faulty service would."""


@dataclass(frozen=True, slots=True)
class Person:
    """A person known to the simulator, with the INS INSi would return for them."""

    birth_name: str
    first_names: tuple[str, ...]
    sex: str
    birth_date: dt.date
    birth_place: str
    ins: Ins
    history: tuple[Ins, ...] = ()
    defect: str | None = None
    """One of `DEFECTS`: the 00 answer for this person is written wrong on purpose."""

    def traits(self, with_place: bool = True) -> IdentityTraits:
        """The traits a source system would send for this person (e.g. to build HL7 messages)."""
        return IdentityTraits(
            self.birth_name,
            self.first_names,
            self.sex,
            self.birth_date,
            self.birth_place if with_place else None,
        )

    def returned_traits(self) -> ReturnedTraits:
        """The TIQ the service answers with."""
        return ReturnedTraits(
            self.birth_name,
            self.first_names,
            self.sex,
            self.birth_date.isoformat(),
            self.birth_place,
        )

    def to_json(self) -> dict[str, Any]:
        """The persons-file form of this person."""
        entry: dict[str, Any] = {
            "birth_name": self.birth_name,
            "first_names": list(self.first_names),
            "sex": self.sex,
            "birth_date": self.birth_date.isoformat(),
            "birth_place": self.birth_place,
            "matricule": str(self.ins.matricule),
            "oid": self.ins.oid.value,
        }
        if self.history:
            entry["history"] = [
                {"matricule": str(ins.matricule), "oid": ins.oid.value} for ins in self.history
            ]
        if self.defect:
            entry["defect"] = self.defect
        return entry

    def __repr__(self) -> str:
        return "Person(<redacted>)"


def public_test_persons() -> list[Person]:
    """The test persons of the qualification service shipped with the engine."""
    text = (resources.files("engine.ins") / "data" / "test_persons.json").read_text("utf-8")
    return persons_from_json(json.loads(text), "test_persons.json")


def load_persons(path: str | Path) -> list[Person]:
    """Read a persons file: `{"persons": [...]}` with the fields of `Person.to_json`."""
    try:
        document = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"{path}: cannot read a JSON persons file ({type(error).__name__})"
        ) from None
    return persons_from_json(document, str(path))


def persons_from_json(document: Any, source: str) -> list[Person]:
    """Build persons from a parsed persons document; errors name the entry index only."""
    entries: Iterable[Any] = document.get("persons", []) if isinstance(document, dict) else []
    persons = []
    for index, entry in enumerate(entries):
        try:
            persons.append(
                Person(
                    birth_name=entry["birth_name"],
                    first_names=tuple(entry["first_names"]),
                    sex=entry["sex"],
                    birth_date=dt.date.fromisoformat(entry["birth_date"]),
                    birth_place=entry["birth_place"],
                    ins=_ins(entry),
                    history=tuple(_ins(item) for item in entry.get("history", ())),
                    defect=_defect(entry.get("defect")),
                )
            )
        except (KeyError, TypeError, ValueError, EngineError) as error:
            raise DatasetError(
                f"{source}: persons[{index}] is invalid ({type(error).__name__})"
            ) from None
    if not persons:
        raise DatasetError(f"{source}: no persons")
    return persons


def _defect(value: Any) -> str | None:
    if value is not None and value not in DEFECTS:
        raise ValueError("defect")
    return value


def _ins(entry: dict[str, str]) -> Ins:
    return Ins(Matricule.parse(entry["matricule"]), InsOid(entry["oid"]))
