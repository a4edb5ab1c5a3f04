"""Are the traits INSi returned those of the person the source described?

INSi may answer 00 for a search by one first name while its identity differs elsewhere; an
INS is attached only when the local traits and INSi's agree. Both sides are compared after
the same normalisation (upper case, accents removed, single spaces; separators `-`, `--`,
`'` and space kept as written, so a hyphen and a space differ):

- birth name, sex and birth date: equal;
- first names: the local first birth first name (XPN-2) equals INSi's first one (the first
  token of `ListePrenom`), and the local list (XPN-3), when given, equals INSi's whole list;
  a person searched by their second first name is someone else until a person checks;
- birth place: equal when both sides know it.

A "lunar" birth date from INSi (unknown day or month) is never coherent: such an identity
cannot be qualified.
"""

from __future__ import annotations

from engine.enrich.identity import FirstNames
from engine.ins.errors import InvalidTraitsError
from engine.ins.result import ReturnedTraits
from engine.ins.traits import IdentityTraits, normalise_name


def differing_traits(
    local: IdentityTraits, first_names: FirstNames, returned: ReturnedTraits
) -> tuple[str, ...]:
    """Every trait that differs (empty when coherent), or a single code for an answer that
    cannot be compared at all.

    `local` must already be normalised (`engine.ins.traits.normalise_traits`).
    """
    try:
        birth_name = normalise_name(returned.birth_name, "birth_name")
        insi_first_names = tuple(
            normalise_name(" ".join(returned.first_names), "first_names").split()
        )
    except InvalidTraitsError:
        return ("returned_traits_unreadable",)
    birth_date = returned.birth_date_value
    if birth_date is None:
        return ("returned_lunar_date",)
    checks = (
        ("birth_name", local.birth_name == birth_name),
        ("sex", local.sex == returned.sex.strip().upper()),
        ("birth_date", local.birth_date == birth_date),
        (
            "first_names",
            bool(insi_first_names)
            and first_names.first == insi_first_names[0]
            and first_names.listed in (None, insi_first_names),
        ),
        (
            "birth_place",
            not local.birth_place
            or not returned.birth_place
            or local.birth_place == returned.birth_place.strip().upper(),
        ),
    )
    return tuple(name for name, ok in checks if not ok)
