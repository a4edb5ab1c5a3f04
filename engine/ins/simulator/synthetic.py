"""Synthetic persons for load tests: deterministic, unique traits, valid keys (2A/2B too)."""

from __future__ import annotations

import datetime as dt
import random

from engine.ins.matricule import Matricule, compute_key
from engine.ins.oids import InsOid
from engine.ins.result import Ins
from engine.ins.simulator.dataset import Person

_SYLLABLES = (
    "BA",
    "BE",
    "BO",
    "CA",
    "DA",
    "DU",
    "FE",
    "GA",
    "LA",
    "LE",
    "LI",
    "LO",
    "MA",
    "ME",
    "MI",
    "NA",
    "NO",
    "PA",
    "PE",
    "RA",
    "RE",
    "RO",
    "SA",
    "SI",
    "TA",
    "TE",
    "TO",
    "VA",
    "VI",
    "ZO",
)
_FIRST_NAMES = {
    "M": (
        "ADRIEN",
        "BASILE",
        "CLEMENT",
        "DENIS",
        "ETIENNE",
        "FABIEN",
        "GASPARD",
        "HUGO",
        "JEAN-LOUIS",
        "LUCAS",
        "MARC",
        "NOEL",
        "OSCAR",
        "PAUL",
        "REMI",
        "SIMON",
        "THEO",
    ),
    "F": (
        "AGATHE",
        "BLANCHE",
        "CLAIRE",
        "DIANE",
        "ELISE",
        "FANNY",
        "GAELLE",
        "HELENE",
        "INES",
        "JEANNE",
        "LEA",
        "MARIE-ANNE",
        "NINA",
        "OCEANE",
        "ROSE",
        "SOLENE",
        "ZOE",
    ),
}
_EPOCH = dt.date(1920, 1, 1)
_DAYS = (dt.date(2024, 12, 31) - _EPOCH).days


def synthetic_persons(n: int, seed: int = 0) -> list[Person]:
    """`n` persons, the same for the same seed; each one's traits give a 00 in the simulator.

    Birth names are made of syllables (never a real test person), 1 to 3 first names, about
    one in twenty born in Corsica (2A/2B), matricules under the test OID.
    """
    rng = random.Random(seed)
    persons: list[Person] = []
    seen: set[tuple[str, str, dt.date]] = set()
    while len(persons) < n:
        sex = rng.choice("MF")
        birth_date = _EPOCH + dt.timedelta(days=rng.randrange(_DAYS))
        birth_name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(3, 5)))
        if (birth_name, sex, birth_date) in seen:
            continue
        seen.add((birth_name, sex, birth_date))
        first_names = tuple(rng.sample(_FIRST_NAMES[sex], rng.choice((1, 1, 2, 3))))
        place = _birth_place(rng)
        body = (
            ("1" if sex == "M" else "2")
            + birth_date.strftime("%y%m")
            + place
            + f"{rng.randrange(1, 1000):03d}"
        )
        ins = Ins(Matricule(body, compute_key(body)), InsOid.TEST_NIR)
        persons.append(Person(birth_name, first_names, sex, birth_date, place, ins))
    return persons


def _birth_place(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return rng.choice(("2A", "2B")) + f"{rng.randrange(1, 400):03d}"
    department = rng.choice([d for d in range(1, 96) if d != 20])
    return f"{department:02d}{rng.randrange(1, 1000):03d}"
