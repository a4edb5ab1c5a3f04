"""Which persons a simulator serves: a persons file or the public test persons, plus synthetics."""

from __future__ import annotations

from engine.ins.simulator.dataset import Person, load_persons, public_test_persons
from engine.ins.simulator.synthetic import synthetic_persons


def population(persons_file: str | None = None, synthetic: int = 0, seed: int = 0) -> list[Person]:
    """The persons file (default: the public test persons) and `synthetic` generated persons."""
    persons = load_persons(persons_file) if persons_file else public_test_persons()
    return persons + synthetic_persons(synthetic, seed)
