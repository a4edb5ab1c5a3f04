"""How the simulator finds persons: the rules of the real traits search.

Birth name, sex and birth date must be equal; the first name sent matches a person's first
first name, any single one of them, or the whole list; a birth place, when sent, must match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from engine.ins.simulator.dataset import Person
from engine.ins.traits import TraitsQuery


class PersonIndex:
    """Persons indexed by (birth name, sex, birth date): a lookup is one dict access."""

    def __init__(self, persons: Iterable[Person]) -> None:
        self._by_key: dict[tuple[str, str, str], list[Person]] = defaultdict(list)
        for person in persons:
            self._by_key[(person.birth_name, person.sex, person.birth_date.isoformat())].append(
                person
            )

    def __len__(self) -> int:
        return sum(len(persons) for persons in self._by_key.values())

    def search(self, query: TraitsQuery) -> list[Person]:
        """Every person the query designates (0, 1 or several)."""
        candidates = self._by_key.get(
            (query.birth_name, query.sex, query.birth_date.isoformat()), []
        )
        first_name = " ".join(query.first_name.split())
        return [
            person
            for person in candidates
            if first_name_matches(first_name, person.first_names)
            and (query.birth_place is None or query.birth_place == person.birth_place)
        ]


def first_name_matches(sent: str, first_names: tuple[str, ...]) -> bool:
    """The first name, any single first name, or the full list in order."""
    return sent in first_names or sent == " ".join(first_names)
