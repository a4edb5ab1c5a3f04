"""Matricule keys, OIDs and the local checks of identity traits."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.ins.errors import InvalidTraitsError, MatriculeError
from engine.ins.matricule import Matricule, compute_key
from engine.ins.oids import InsOid, parse_oid
from engine.ins.simulator.dataset import public_test_persons
from engine.ins.traits import IdentityTraits, fingerprint, normalise_traits

DOC_MATRICULES = [
    "297022A02077878",
    "160012B02077713",
    "275126322074974",
    "236066322083656",
    "109076322083489",
    "209076322083439",
    "180032B02040123",
    "109076322088835",
    "110086322083060",
]


@pytest.mark.parametrize("text", DOC_MATRICULES)
def test_every_matricule_of_the_doc_has_a_valid_key(text: str) -> None:
    matricule = Matricule.parse(text)
    assert str(matricule) == text
    assert compute_key(matricule.body) == text[13:]


def test_corsica_is_read_as_19_and_18() -> None:
    assert compute_key("297022A020778") == f"{97 - 2970219020778 % 97:02d}"
    assert compute_key("160012B020777") == f"{97 - 1600118020777 % 97:02d}"


@pytest.mark.parametrize(
    "text",
    ["297022A02077879", "29702 2A020778", "2970222A0207787X", "2970X2A02077878", "297022C02077878"],
)
def test_a_wrong_key_or_shape_is_refused_without_echoing_the_number(text: str) -> None:
    with pytest.raises(MatriculeError) as caught:
        Matricule.parse(text)
    assert "2970" not in str(caught.value)


def test_a_matricule_repr_hides_the_number() -> None:
    assert "2970" not in repr(Matricule.parse("297022A02077878"))


def test_oid_table() -> None:
    assert parse_oid(" 1.2.250.1.213.1.4.8 ") is InsOid.NIR
    assert InsOid.NIR.hl7_namespace == "ASIP-SANTE-INS-NIR"
    assert InsOid.NIA.hl7_namespace == "ASIP-SANTE-INS-NIA"
    # Test and demonstration NIR are written as the published PAM FR examples write them.
    assert InsOid.TEST_NIR.hl7_namespace == InsOid.DEMO_NIR.hl7_namespace == "ASIP-SANTE-INS-NIR"
    assert (InsOid.NIA.kind, InsOid.NIR.kind, InsOid.TEST_NIR.kind) == ("NIA", "NIR", "NIR")
    assert InsOid.DEMO_NIR.value == "1.2.250.1.213.1.4.11"
    assert parse_oid("1.2.250.1.213.1.4.12") is None


def test_the_packaged_test_persons_match_the_doc() -> None:
    persons = {(p.birth_name, p.first_names[0], p.birth_place): p for p in public_test_persons()}
    provisoire = persons[("PROVISOIRE", "MATRICULE", "63220")]
    assert str(provisoire.ins.matricule) == "109076322088835" and provisoire.ins.oid is InsOid.NIA
    ecetinsi = persons[("ECETINSI", "PIERRE-ALAIN", "63220")]
    assert [str(i.matricule) for i in ecetinsi.history] == ["209076322083439"]
    assert {str(p.ins.matricule) for p in persons.values()} >= set(DOC_MATRICULES) - {
        "209076322083439"
    }
    assert not any(p.birth_name == "HOUILLES" for p in persons.values())


def traits(**changes: object) -> IdentityTraits:
    values: dict[str, object] = {
        "birth_name": "adrtrois",
        "first_names": ("Dominique",),
        "sex": "f",
        "birth_date": dt.date(1997, 2, 26),
        "birth_place": "2a020",
    }
    values.update(changes)
    return IdentityTraits(**values)  # type: ignore[arg-type]


def test_traits_are_upper_cased_unaccented_and_single_spaced() -> None:
    normalised = normalise_traits(
        traits(birth_name=" de  vinci ", first_names=("Hélène  Zoé", "jean-louis"))
    )
    assert normalised.birth_name == "DE VINCI"
    assert normalised.first_names == ("HELENE", "ZOE", "JEAN-LOUIS")
    assert normalised.sex == "F" and normalised.birth_place == "2A020"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"birth_name": "D’ÆION"}, "invalid_characters"),
        ({"first_names": ("CŒUR",)}, "invalid_characters"),
        ({"birth_name": "DUPONT3"}, "invalid_characters"),
        ({"birth_name": "-DUPONT"}, "invalid_name"),
        ({"birth_name": "DU---PONT"}, "invalid_name"),
        ({"first_names": ()}, "invalid_name"),
        ({"sex": "I"}, "invalid_sex"),
        ({"birth_date": dt.date.today() + dt.timedelta(days=2)}, "invalid_date"),
        ({"birth_place": "6322"}, "invalid_place"),
    ],
)
def test_traits_insi_cannot_hold_are_refused_naming_the_field_only(
    changes: dict[str, object], code: str
) -> None:
    with pytest.raises(InvalidTraitsError) as caught:
        normalise_traits(traits(**changes))
    assert caught.value.code == code
    for value in changes.values():
        if isinstance(value, str) and value:
            assert value not in str(caught.value)


@pytest.mark.parametrize("name", ["D'ARC", "L' HERMITE", "DUPONT--DURAND", "SAINT-JEAN"])
def test_documented_separators_are_accepted(name: str) -> None:
    assert normalise_traits(traits(birth_name=name)).birth_name == name


def test_fingerprint_is_opaque_and_equal_for_equal_normalised_traits() -> None:
    a = fingerprint(normalise_traits(traits()), "scope")
    assert a == fingerprint(normalise_traits(traits(birth_name="ADRTROIS ")), "scope")
    assert a != fingerprint(normalise_traits(traits()), "other scope")
    assert a != fingerprint(normalise_traits(traits(birth_place=None)), "scope")
    assert len(a) == 64 and "ADRTROIS" not in a


def test_traits_repr_carries_no_patient_data() -> None:
    assert "ADRTROIS" not in repr(traits(birth_name="ADRTROIS"))
