"""Reading the local identity from PID/ZFD, whatever the delimiters and however incomplete."""

import datetime as dt

import pytest

from engine.enrich.identity import LocalIdentity, read_identity, single_pid
from engine.enrich.reliability import Reliability
from engine.hl7.message import Message
from engine.ins.errors import InvalidTraitsError

MSH = "MSH|^~\\&|S|F|R|F|20240101||ADT^A28^ADT_A05|1|P|2.5\r"


def identity(pid: str, *, msh: str = MSH, rest: str = "") -> LocalIdentity:
    message = Message.parse(msh + pid + "\r" + rest)
    index = single_pid(message)
    assert index is not None
    return read_identity(message, index)


def test_reads_every_trait_from_its_pam_fr_place() -> None:
    found = identity(
        "PID|||42^^^H&1.2.3&ISO^PI~1^^^X^NH||MARTIN^Anne^^^^^D~D'ARC\\S\\X&PREFIX^JEANNE^"
        "JEANNE MARIE^^Mme^^L||19800102120000|F|||1 rue^^PARIS^^75001^FRA^H~^^^^^FRA^BDL^^63220"
        "|||||||||||||||||||||VALI~HOMA",
        rest="ZFD|||||SM||CN\r",
    )
    assert (found.birth_name, found.first_name, found.first_names) == (
        "D'ARC^X",
        "JEANNE",
        "JEANNE MARIE",
    )
    assert (found.birth_date, found.sex, found.birth_places) == ("19800102120000", "F", ("63220",))
    assert (found.status, found.reliability) == ("VALI~HOMA", Reliability("VALI"))
    assert (found.local_id, found.ins, found.document) == ("42", (), "CN")
    assert not (found.identity_unknown or found.lunar_birth_date or found.birth_date_corrected)


def test_reads_with_non_default_delimiters() -> None:
    found = identity(
        "PID###7$$$H$PI##DUPONT!T!FILS$LOUIS$LOUIS PAUL$$$$L##20000101#M###$$$$$$BDL$$2A020"
        "#####################PROV",
        msh="MSH#$*!@#S#F#R#F#20240101##ADT$A28#1#P#2.5\r",
    )
    assert (found.birth_name, found.first_names, found.birth_places) == (
        "DUPONT@FILS",
        "LOUIS PAUL",
        ("2A020",),
    )
    assert (found.local_id, found.reliability) == ("7", Reliability("PROV"))


@pytest.mark.parametrize(
    ("cx", "is_ins"),
    [
        ("297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS", True),
        ("297022A02077878^^^&1.2.250.1.213.1.4.10&ISO", True),
        ("297022A02077878^^^ASIP-SANTE-INS-NIA", True),
        ("297022A02077878^^^X&1.2.250.1.213.1.4.8&ISO^NH", True),  # the OID decides
        ("297022A02077878^^^1.2.250.1.213.1.4.8^INS-NIR", True),  # the OID in HD-1
        ("297022A02077878^^^asip-sante-ins-nir", True),
        ("297022A02077878^^^ASIP-SANTE-NIR&1.2.250.1.213.1.4.8&ISO^NH", False),  # billing NIR
        ("1970263220123^^^ASIP-SANTE-NIR^NH", False),
        ("297022A02077878^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS", True),  # a ^ lost
        ("297022A02077878^^^HOSP^PI^INS", True),
        ("INS^^^HOSP^PI", False),  # a local identifier that happens to read INS
        ("0093876492823371705143^^^ASIP-SANTE-INS-C&1.2.250.1.213.1.4.2&ISO^INS-C", False),
        ("42^^^H&1.2.3&ISO^PI", False),
    ],
)
def test_ins_repetitions_are_recognised_but_never_the_billing_nir(cx: str, is_ins: bool) -> None:
    found = identity(f"PID|||42^^^H^PI~{cx}")
    assert [ins.index for ins in found.ins] == ([1] if is_ins else [])


def test_several_pid_or_none_is_not_read() -> None:
    assert single_pid(Message.parse(MSH + "EVN||1\r")) is None
    assert single_pid(Message.parse(MSH + "PID|1\rPID|2\r")) is None


def test_traits_are_normalised_for_insi() -> None:
    traits = identity("PID|||||Ëlise^Zoé^ZOÉ  marie^^^^L||19751231|f|||^^^^^^BDL^^63220").traits()
    assert (traits.birth_name, traits.first_names, traits.sex) == ("ELISE", ("ZOE", "MARIE"), "F")
    assert (traits.birth_date, traits.birth_place) == (dt.date(1975, 12, 31), "63220")


def test_first_name_alone_when_no_list() -> None:
    assert identity("PID|||||ADRUN^ZOE^^^^^L||19751231|F").traits().first_names == ("ZOE",)


@pytest.mark.parametrize(
    ("pid", "code"),
    [
        ("PID|||||ADRUN^ZOE^^^^^D||19751231|F", "no_legal_name"),
        ("PID", "no_legal_name"),
        ("PID|||||ADRUN^ZOE^^^^^L~ADRUN^ZOE^ZOE MARIE^^^^L||19751231|F", "several_legal_names"),
        ("PID|||||ADRUN^ZOE^MARIE ZOE^^^^L||19751231|F", "first_name_not_in_list"),
        ("PID|||||ADRUN^ZOE^^^^^L||197512|F", "invalid_date"),
        ("PID|||||ADRUN^ZOE^^^^^L||19751232|F", "invalid_date"),
        ("PID|||||ADRUN^ZOE^^^^^L||19751231|U", "invalid_sex"),
        ("PID|||||ADRUN^ZOE^^^^^L||19751231|", "invalid_sex"),
        ("PID|||||D’ÆION^CŒUR^^^^^L||19751231|F", "invalid_characters"),
        ("PID|||||^ZOE^^^^^L||19751231|F", "invalid_name"),
        ("PID|||||ADRUN^ZOE^^^^^L||19751231|F|||^^^^^^BDL^^6322", "invalid_place"),
        (
            "PID|||||ADRUN^ZOE^^^^^L||19751231|F|||^^^^^FRA^BDL^^63220~^^^^^FRA^BDL^^2A020",
            "ambiguous_place",
        ),
        ("PID|||||ADRUN\\X41\\^ZOE^^^^^L||19751231|F", "invalid_characters"),
    ],
)
def test_unusable_traits_name_the_field(pid: str, code: str) -> None:
    with pytest.raises(InvalidTraitsError) as raised:
        identity(pid).traits()
    assert raised.value.code == code


def test_an_ins_is_found_in_pid_2_pid_3_and_pid_4_but_a_placeholder_is_none() -> None:
    found = identity(
        "PID||297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
        '|42^^^H^PI~^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS~""^^^X^INS'
        "|160012B02077713^^^&1.2.250.1.213.1.4.8&ISO~43^^^H^PI"
    )
    assert [(ins.field, ins.index, ins.matricule) for ins in found.ins] == [
        (2, 0, "297022A02077878"),
        (4, 0, "160012B02077713"),
    ]


def test_a_carried_ins_is_read_canonically_and_its_oid_wherever_written() -> None:
    [ins] = identity("PID|||297022a02077878 ^^^1.2.250.1.213.1.4.9&&ISO^INS").ins
    assert (ins.canonical_matricule, ins.oid_text, ins.oid is not None) == (
        "297022A02077878",
        "1.2.250.1.213.1.4.9",
        True,
    )


@pytest.mark.parametrize(
    ("places", "expected"),
    [
        ("^^^^^FRA^BDL^^63220~^^^^^FRA^BDL^^63220", "63220"),  # agreeing repetitions
        ('^^^^^FRA^BDL^^""', None),  # an HL7 null: unknown, searched without
        ("^^^^^FRA^BDL^^~^^^^^FRA^BDL^^63220", "63220"),
    ],
)
def test_birth_place_from_every_bdl_repetition(places: str, expected: str | None) -> None:
    found = identity(f"PID|||||ADRUN^ZOE^^^^^L||19751231|F|||{places}")
    assert found.traits().birth_place == expected


def test_source_flags_are_read_from_pid_31_and_zfd() -> None:
    found = identity(
        "PID|||||ADRUN^ZOE^^^^^L||19751231|F" + "|" * 23 + "Y|VALI",
        rest="ZFD|201505||N|Y\r",
    )
    assert (found.identity_unknown, found.lunar_birth_date, found.birth_date_corrected) == (
        True,
        True,
        True,
    )
    year_only = identity("PID|||||ADRUN^ZOE^^^^^L||19751231|F", rest="ZFD|^^1975\r")
    assert year_only.lunar_birth_date
    quiet = identity("PID|||||ADRUN^ZOE^^^^^L||19751231|F", rest='ZFD|""^^||N|N\r')
    assert not (quiet.identity_unknown or quiet.lunar_birth_date or quiet.birth_date_corrected)
