"""The outbound INS guard on the paths where enrichment says "not for me": each case is a
message that left byte for byte before the guard, and what leaves now."""

from __future__ import annotations

import pytest

from engine.enrich.guard import InsGuard
from engine.enrich.guard_settings import InsGuardSettings
from tests.enrich.conftest import routed_from

MSH = "MSH|^~\\&|SRC|HOSP|DST|HOSP|20240101120000||{type}|C001|{mode}|2.5^FRA^2.11|||||FRA|8859/1"
PI = "IPP001^^^HOSP&1.2.250.1.999.1.1&ISO^PI"
ZOE = "275126322074974"  # ADRUN ZOE, a public test person of INSi
ANTHONY = "180032B02040123"  # CORSE ANTHONY, another one
INS = f"{ZOE}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
OTHER = f"{ANTHONY}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
BILLING = "1751263220749^^^ASIP-SANTE-NIR&1.2.250.1.213.1.4.8&ISO^NH"


def pid(ids: str, status: str = "VALI", birth: str = "19751231", pid31: str = "") -> str:
    fields = ["PID", "1", "", ids, "", "ADRUN^ZOE^ZOE^^^^L", "", birth, "F"]
    fields += [""] * (31 - len(fields)) + [pid31, status]
    return "|".join(fields)


def message(*segments: str, type_: str = "ADT^A03^ADT_A03", mode: str = "P") -> bytes:
    return "\r".join([MSH.format(type=type_, mode=mode), *segments, ""]).encode("latin-1")


def guarded(raw: bytes, **settings: bool) -> tuple[bytes, str | None]:
    """What leaves, and the guard's reason (None when it had nothing to say)."""
    routed = routed_from(raw)
    result = InsGuard(InsGuardSettings(**settings))(routed)
    return routed.output(), (None if result is None else result.detail)


def pid_lines(raw: bytes) -> list[str]:
    return [s for s in raw.decode("latin-1").split("\r") if s.startswith("PID")]


PASSING = [
    pytest.param(message(pid(f"{PI}~{INS}")), id="vali-canonical"),
    pytest.param(message(pid(f"{PI}~{INS}", "VALI  ")), id="trailing-spaces-insignificant"),
    pytest.param(message(pid(f"{PI}~{INS}", "VALI~HOMA")), id="homonym-attribute"),
    pytest.param(message(pid(f"{PI}~{BILLING}", "PROV")), id="billing-nir-is-no-ins"),
    pytest.param(message(pid(PI, "PROV")), id="no-ins-at-all"),
    pytest.param(
        message(pid(f"{PI}~{INS.replace('.4.8', '.4.10')}"), mode="T"), id="test-oid-in-test"
    ),
]


@pytest.mark.parametrize("raw", PASSING)
def test_a_pid_that_passes_leaves_byte_for_byte(raw: bytes) -> None:
    assert guarded(raw) == (raw, None)


REMOVED = [
    pytest.param(message(pid(f"{PI}~{INS}~{OTHER}")), "several_ins", id="another-persons-ins"),
    pytest.param(message(pid(f"{PI}~{INS}", "PROV")), "ins_without_vali", id="prov"),
    pytest.param(message(pid(f"{PI}~{INS}", "")), "ins_without_vali", id="no-status"),
    pytest.param(
        message(pid(f"{PI}~{INS}", "VALI~FICT"), type_="ADT^A40^ADT_A39", mode="P"),
        "fictive_or_doubtful",
        id="merge-fictive",
    ),
    pytest.param(
        message(pid(f"{PI}~{INS}", "VALI^DOUT")), "fictive_or_doubtful", id="doubtful-component"
    ),
    pytest.param(message(pid(f"{PI}~{INS}", "VALI~PROV")), "several_statuses", id="two-statuses"),
    pytest.param(message(pid(f"{PI}~{INS}", "vali")), "unknown_status", id="lower-case"),
    pytest.param(message(pid(f"{PI}~{INS}", " VALI")), "unknown_status", id="leading-space"),
    pytest.param(message(pid(f"{PI}~{INS}", pid31="Y")), "identity_unknown", id="identity-unknown"),
    pytest.param(message(pid(f"{PI}~{INS}", birth="19751200")), "partial_birth_date", id="day-00"),
    pytest.param(message(pid(f"{PI}~{INS}", birth="1975")), "partial_birth_date", id="year"),
    pytest.param(
        message(pid(f"{PI}~{INS}"), "ZFD|||N|N", "ZFD|00^00^1975"),
        "lunar_birth_date",
        id="second-zfd-lunar",
    ),
    pytest.param(  # only the first component of ZFD-1 used to be read
        message(pid(f"{PI}~{INS}"), "ZFD|^^1975"), "lunar_birth_date", id="zfd-lunar-year-only"
    ),
    pytest.param(
        message(pid(f"{PI}~{INS}"), "ZFD|||N|N", "ZFD||||Y"),
        "birth_date_corrected",
        id="second-zfd-corrected",
    ),
    pytest.param(
        message(pid(f"{PI}~{INS.replace(ZOE, ZOE[:-2] + '75')}")), "invalid_key", id="bad-key"
    ),
    pytest.param(
        message(pid(f"{PI}~{INS.replace('.4.8', '.4.10')}")),
        "test_oid_in_production",
        id="test-oid-in-production",
    ),
    pytest.param(
        message(pid(f"{PI}~{INS.replace('.4.8', '.4.11')}"), mode=""),
        "test_oid_in_production",
        id="demo-oid-without-processing-id",
    ),
    pytest.param(
        message(pid(f"{PI}~{ZOE}^^^ASIP-SANTE-INS-NIA&1.2.250.1.213.1.4.8&ISO^INS-NIA")),
        "not_canonical",
        id="nia-type-nir-oid",
    ),
    pytest.param(
        message(pid(f"{PI}~{ZOE}^^^&1.2.250.1.213.1.4.8&ISO^INS-NIR")),
        "not_canonical",
        id="fr-core-type",
    ),
    pytest.param(
        message(pid(f"{PI}~{ZOE}^^^1.2.250.1.213.1.4.8^INS")), "not_canonical", id="oid-in-hd1"
    ),
    pytest.param(message(pid(f"{PI}~{ZOE}^^^^INS")), "unknown_oid", id="no-authority"),
    pytest.param(
        message(pid(PI, "VALI"), "PV1||N", type_="ORU^R01^ORU_R01").replace(
            PI.encode(), f"{PI}~{ZOE}^^^^INS-NIR-TEST".encode()
        ),
        "unknown_oid",
        id="oru-test-type-no-oid",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), REMOVED)
def test_an_ins_breaking_the_invariant_is_removed_with_its_reason(raw: bytes, reason: str) -> None:
    output, found = guarded(raw)
    assert found == reason
    (line,) = pid_lines(output)
    assert line.split("|")[3] == PI  # the local identifier stays, no empty repetition
    assert ZOE not in output.decode("latin-1")
    assert output.replace(line.encode(), b"") == raw.replace(pid_lines(raw)[0].encode(), b"")


def test_every_pid_of_a_message_is_guarded_on_its_own() -> None:
    """A17 swap: the first patient's INS is fine, the second's PID says PROV."""
    first = pid(f"{PI}~{INS}")
    second = pid(f"IPP002^^^HOSP&1.2.250.1.999.1.1&ISO^PI~{OTHER}", "PROV")
    output, reason = guarded(message(first, "PV1||N", second, "PV1||N", type_="ADT^A17"))
    assert reason == "ins_without_vali"
    lines = pid_lines(output)
    assert lines[0] == first
    assert lines[1].split("|")[3] == "IPP002^^^HOSP&1.2.250.1.999.1.1&ISO^PI"


def test_the_same_ins_twice_leaves_once_in_canonical_form() -> None:
    raw = message(pid(f"{PI}~{INS}~{ZOE}^^^&1.2.250.1.213.1.4.8&ISO^INS-NIR"))
    output, reason = guarded(raw)
    assert reason == "same_ins_twice"
    assert pid_lines(output)[0].split("|")[3] == f"{PI}~{INS}"


def test_an_ins_c_never_leaves_but_the_ins_beside_it_does() -> None:
    ins_c = "1234567890123456789012^^^ASIP-SANTE-INS-C&1.2.250.1.213.1.4.2&ISO^INS-C"
    output, reason = guarded(message(pid(f"{PI}~{ins_c}~{INS}")))
    assert reason == "ins_c"
    assert pid_lines(output)[0].split("|")[3] == f"{PI}~{INS}"


def test_an_ins_in_pid_2_or_pid_4_is_not_where_pam_fr_puts_it() -> None:
    raw = message(pid(PI).replace("PID|1||", f"PID|1|{INS}|"))
    output, reason = guarded(raw)
    assert reason == "not_canonical"
    assert pid_lines(output)[0].split("|")[2] == ""


def test_a_route_may_allow_test_oids_in_production() -> None:
    raw = message(pid(f"{PI}~{INS.replace('.4.8', '.4.10')}"))
    assert guarded(raw, allow_test_ins=True) == (raw, None)


def test_the_record_for_the_work_list_names_what_was_removed() -> None:
    routed = routed_from(message(pid(f"{PI}~{INS}~{OTHER}")))
    result = InsGuard(InsGuardSettings())(routed)
    assert result is not None and result.outcome == "removed"
    record = result.payload
    assert record["outcome"] == "incoherent" and record["detail"] == "several_ins"
    assert record["local_id"] == "IPP001" and record["guard"] == ["several_ins"]
    assert {ins["matricule"] for ins in record["removed_ins"]} == {ZOE, ANTHONY}
    assert "ZOE" not in repr(result)  # the record holds identity: never in a repr
