"""The validate kind: HL7 v2.5 structure through hl7apy, PAM FR rules, and an ERR that
locates the problem without quoting the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.embed import RouteRunner
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.hl7.pam_fr import pam_fr_problem
from engine.hl7.structure import first_problem
from engine.tools.replay.files import expand_paths, load_files
from tests.replay.corpus import EXPECTATIONS
from tests.support.config_errors import config_error

SAMPLES = Path(__file__).resolve().parents[2] / "hl7_samples"
A01 = (
    "MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240315041500||ADT^A01^ADT_A01|C4|P|2.5^FRA^2.11"
    "|||||FRA|8859/1|||2.11^IHE_FRANCE-2.11-PAM\r"
    "EVN||20240315041500\r"
    "PID|||800004^^^HOSP^PI||TCHITCHI^CATARINA^CATARINA BELLA^^Mme^^L||19360621|F\r"
    "PV1|1|I|CARDIO^101^1^HOSP\r"
    "ZBE|MVT1^HOSP|20240315041500||INSERT|N\r"
)


def problem(text: str, pam_fr: bool = False) -> tuple[int, str] | None:
    message = Message.parse(text)
    error = first_problem(message, "2.5")
    if error is None and pam_fr:
        error = pam_fr_problem(message, Header.from_message(message))
    return None if error is None else (error.code.value, error.location)


@pytest.mark.system
def test_the_sample_corpus_is_valid_v25_but_where_its_expectations_say_not() -> None:
    files, _ = load_files(expand_paths([str(SAMPLES)]))
    found = {
        message.control_id: problem(decode(message.payload, CharsetPolicy()).text)
        for file in files
        for message in file.messages
    }
    assert {control_id: found for control_id, found in found.items() if found} == {
        "SMP0017": (102, "PID^1^7"),  # 20230231
        "SMP0045": (102, "PID^1^32"),  # a component in PID-32 (an IS field)
    }
    invalid = {
        entry["control_id"] for entry in EXPECTATIONS if not entry.get("structurally_valid", True)
    }
    assert invalid == {"SMP0017", "SMP0045"}


def test_z_segments_are_left_to_the_profile() -> None:
    """hl7apy cannot group an A40's PID and MRG around a ZFD; Z segments are site-defined."""
    a40 = (
        "MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240315191500||ADT^A40^ADT_A39|C19|P|2.5\r"
        "EVN||20240315191500\r"
        "PID|||800019^^^HOSP^PI||CORSE^ANTHONY^^^^^L||19800302|M\r"
        "ZFD||||N|SM||CN|20301231\r"
        "MRG|800119^^^HOSP^PI\r"
    )
    assert problem(a40) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("TCHITCHI^CATARINA^CATARINA BELLA^^Mme^^L", ""), (101, "PID^1^5")),
        (("|800004^^^HOSP^PI|", "||"), (101, "PID^1^3")),
        (("19360621", "19360631"), (102, "PID^1^7")),
        (("PV1|1|I|", "PV1|1|" + "I" * 30 + "|"), (102, "PV1^1^2")),
        (("EVN||20240315041500\r", ""), (100, "EVN")),
        (("PV1|1|I|CARDIO^101^1^HOSP\r", ""), (100, "PV1")),
    ],
)
def test_the_first_problem_is_located(change: tuple[str, str], expected: tuple[int, str]) -> None:
    assert problem(A01) is None
    assert problem(A01.replace(*change)) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("ZBE|MVT1^HOSP|20240315041500||INSERT|N\r", ""), (100, "ZBE")),
        (("||INSERT|", "||MOVE|"), (103, "ZBE^1^4")),
        (("^^Mme^^L|", "^^Mme^^D|"), (101, "PID^1^5")),
        (("|2.5^FRA^2.11|", "|2.5.1|"), (203, "MSH^1^12")),
    ],
)
def test_the_pam_fr_profile(change: tuple[str, str], expected: tuple[int, str]) -> None:
    assert problem(A01, pam_fr=True) is None
    assert problem(A01.replace(*change), pam_fr=True) == expected


def config(tmp_path: Path, step: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        f'[[routes.steps]]\nkind = "validate"\n{step}\n'
        '[[routes.destinations]]\nname = "ehr"\nfile = "out"\n',
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("on_failure", "delivered"), [('on_failure = "pass"', True), ('on_failure = "drop"', False)]
)
async def test_a_failure_is_recorded_then_passed_or_dropped(
    tmp_path: Path, on_failure: str, delivered: bool
) -> None:
    invalid = A01.replace("19360621", "19360631").encode("latin-1")
    async with await RouteRunner.open(config(tmp_path, on_failure)) as runner:
        good, bad = await runner.process(A01.encode("latin-1")), await runner.process(invalid)
    assert [(d.outcome, d.detail) for d in good.decisions] == [("valid", "")]
    assert [(d.outcome, d.detail) for d in bad.decisions] == [("invalid", "102 PID^1^7")]
    assert ("ehr" in bad.destinations, bad.dropped) == (delivered, not delivered)


@pytest.mark.parametrize(
    ("step", "key", "expected"),
    [
        ('version = "2.9"', "version", "one of 2.1"),
        ('profile = "ihe"', "profile", '"pam_fr" or absent'),
        ('profile = "pam_fr"\nversion = "2.4"', "version", '"2.5" with profile'),
        ('on_failure = "AR"', "on_failure", "needs before_ack = true"),
    ],
)
def test_settings_errors_name_the_key(tmp_path: Path, step: str, key: str, expected: str) -> None:
    error = config_error(config(tmp_path, step))
    assert error.key == f"routes[0].steps[0].{key}"
    assert expected in error.expected
