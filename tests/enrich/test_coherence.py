"""The coherence rule between the local traits and those INSi returned."""

import datetime as dt

import pytest

from engine.enrich.coherence import differing_traits
from engine.enrich.identity import FirstNames
from engine.ins.result import ReturnedTraits
from engine.ins.traits import IdentityTraits

LOCAL = IdentityTraits("DARK", ("JEANNE", "MARIE"), "F", dt.date(1980, 1, 2), "63220")
LISTED = FirstNames("JEANNE", ("JEANNE", "MARIE"))  # XPN-2 and XPN-3 given
FIRST_ONLY = FirstNames("JEANNE", None)  # XPN-2 alone


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
    ("names", "insi", "expected"),
    [
        (LISTED, returned(), ()),
        (LISTED, returned(birth_name="dârk"), ()),
        (LISTED, returned(birth_place=""), ()),
        # The first birth first name must be INSi's first, the list INSi's whole list.
        (FIRST_ONLY, returned(first_names=("JEANNE", "MARIE", "CECILE")), ()),
        (LISTED, returned(first_names=("JEANNE", "MARIE", "CECILE")), ("first_names",)),
        (LISTED, returned(first_names=("JEANNE",)), ("first_names",)),  # longer local list
        (LISTED, returned(first_names=("ANNE", "JEANNE")), ("first_names",)),
        (FIRST_ONLY, returned(first_names=("ANNE", "JEANNE")), ("first_names",)),
        (LISTED, returned(first_names=("JEANNE MARIE",)), ()),  # the same tokens
        (
            FirstNames("JEANNE-MARIE", None),
            returned(first_names=("JEANNE", "MARIE")),
            ("first_names",),
        ),
        (LISTED, returned(first_names=("MARIE", "ANNE")), ("first_names",)),
        (LISTED, returned(birth_name="DARC"), ("birth_name",)),
        (LISTED, returned(birth_name="D-ARK"), ("birth_name",)),
        (LISTED, returned(sex="M"), ("sex",)),
        (LISTED, returned(birth_date="1980-01-03"), ("birth_date",)),
        (LISTED, returned(birth_place="2A020"), ("birth_place",)),
        (
            LISTED,
            returned(sex="M", first_names=("MARIE",), birth_place="2A020"),
            ("sex", "first_names", "birth_place"),
        ),
        (LISTED, returned(birth_date="1980-00-00"), ("returned_lunar_date",)),
        (LISTED, returned(birth_name="DŒRK"), ("returned_traits_unreadable",)),
    ],
)
def test_differing_traits(
    names: FirstNames, insi: ReturnedTraits, expected: tuple[str, ...]
) -> None:
    assert differing_traits(LOCAL, names, insi) == expected
