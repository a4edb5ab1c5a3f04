"""The coherence rule between the local traits and those INSi returned."""

import datetime as dt

import pytest

from engine.enrich.coherence import incoherence
from engine.ins.result import ReturnedTraits
from engine.ins.traits import IdentityTraits

LOCAL = IdentityTraits("DARK", ("JEANNE", "MARIE"), "F", dt.date(1980, 1, 2), "63220")


def returned(**changes: object) -> ReturnedTraits:
    values: dict[str, object] = {
        "birth_name": "DARK",
        "first_names": ("JEANNE", "MARIE"),
        "sex": "F",
        "birth_date": "1980-01-02",
        "birth_place": "63220",
    }
    values.update(changes)
    return ReturnedTraits(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("local", "insi", "expected"),
    [
        (LOCAL, returned(), None),
        (LOCAL, returned(birth_name="dârk"), None),
        (LOCAL, returned(first_names=("JEANNE", "MARIE", "CECILE")), None),
        (LOCAL, returned(first_names=("ANNE", "JEANNE")), None),
        (LOCAL, returned(first_names=("JEANNE MARIE",)), None),
        (IdentityTraits("DARK", ("JEANNE",), "F", dt.date(1980, 1, 2)), returned(), None),
        (LOCAL, returned(birth_place=""), None),
        (LOCAL, returned(birth_name="DARC"), "traits_birth_name"),
        (LOCAL, returned(birth_name="D-ARK"), "traits_birth_name"),
        (LOCAL, returned(first_names=("MARIE", "ANNE")), "traits_first_names"),
        (LOCAL, returned(sex="M"), "traits_sex"),
        (LOCAL, returned(birth_date="1980-01-03"), "traits_birth_date"),
        (LOCAL, returned(birth_date="1980-00-00"), "returned_lunar_date"),
        (LOCAL, returned(birth_place="2A020"), "traits_birth_place"),
        (LOCAL, returned(birth_name="DŒRK"), "returned_traits_unreadable"),
    ],
)
def test_incoherence(local: IdentityTraits, insi: ReturnedTraits, expected: str | None) -> None:
    assert incoherence(local, insi) == expected
