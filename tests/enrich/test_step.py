"""The step's behaviour around INSi: retry window, configuration errors, idempotence, logs,
and never raising on malformed data. Real simulator service, except where INSi's failure
must be scripted (a handler-taking fake around the real service)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Callable

import pytest
from structlog.testing import capture_logs

from engine.base.logs import configure_logging
from engine.enrich.outcome import Outcome
from engine.enrich.settings import EnrichSettings
from engine.enrich.step import EnrichStep
from engine.ins.outcome import SearchOutcome, SearchStatus
from engine.ins.service import InsiService, open_insi_service
from engine.ins.settings import InsiSettings
from engine.ins.traits import IdentityTraits
from tests.enrich.conftest import routed_from

VALI_A28 = (
    "MSH|^~\\&|SRC|HOSP|DST|HOSP|20240101120000||ADT^A28^ADT_A05|C042|P|2.5^FRA^2.11"
    "|||||FRA|8859/1\r"
    "EVN||20240101120000\r"
    "PID|||IPP001^^^HOSP^PI||MÉRY^Hélène^^^^^D~ADRTROIS^DOMINIQUE^DOMINIQUE^^^^L||19970226|F"
    "|||^^^^^FRA^BDL^^2A020|||||||||||||||||||||VALI\r"
    "PV1||N\r"
).encode("latin-1")
ADRTROIS = IdentityTraits("ADRTROIS", ("DOMINIQUE",), "F", dt.date(1997, 2, 26), "2A020")
PATIENT_DATA = ("ADRTROIS", "DOMINIQUE", "MÉRY", "Hélène", "297022A02077878", "1997", "2A020")


@pytest.fixture
async def insi() -> AsyncIterator[InsiService]:
    service = await open_insi_service(InsiSettings())
    yield service
    await service.aclose()


class ScriptedInsi:
    """A handler-taking stand-in: `handler(attempt, traits)` gives each search's outcome."""

    simulated = True

    def __init__(self, handler: Callable[[int, IdentityTraits], SearchOutcome]) -> None:
        self._handler = handler
        self.attempts = 0

    async def search(self, traits: IdentityTraits, *, verifying: bool = False) -> SearchOutcome:
        self.attempts += 1
        return self._handler(self.attempts, traits)

    async def aclose(self) -> None:
        return None


class FakeTime:
    """A monotonic clock that only sleeping advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


UNAVAILABLE = SearchOutcome(SearchStatus.UNAVAILABLE, calls=3, simulated=True, detail="insi_102")


async def test_retries_with_back_off_until_insi_answers(insi: InsiService) -> None:
    found = await insi.search(ADRTROIS)
    scripted = ScriptedInsi(lambda attempt, _: UNAVAILABLE if attempt <= 4 else found)
    time = FakeTime()
    settings = EnrichSettings(retry_window_s=30.0, retry_backoff_s=1.0, retry_backoff_max_s=4.0)
    routed = routed_from(VALI_A28)
    record = (
        await EnrichStep(settings, scripted, clock=time.clock, sleep=time.sleep)(routed)
    ).payload  # type: ignore[arg-type]
    assert (record["outcome"], record["calls"]) == ("added", 4 * 3 + found.calls)
    assert time.sleeps == [1.0, 2.0, 4.0, 4.0]


async def test_gives_up_when_the_retry_window_has_passed() -> None:
    scripted = ScriptedInsi(lambda _, __: UNAVAILABLE)
    time = FakeTime()
    settings = EnrichSettings(retry_window_s=10.0, retry_backoff_s=1.0, retry_backoff_max_s=4.0)
    routed = routed_from(VALI_A28)
    record = (
        await EnrichStep(settings, scripted, clock=time.clock, sleep=time.sleep)(routed)
    ).payload  # type: ignore[arg-type]
    assert (record["outcome"], record["detail"]) == ("insi_unavailable", "insi_102")
    assert time.sleeps == [1.0, 2.0, 4.0, 3.0]  # the last wait ends at the window
    assert record["calls"] == 3 * scripted.attempts == 15
    assert routed.output() == VALI_A28


async def test_configuration_error_is_not_retried() -> None:
    refused = SearchOutcome(SearchStatus.CONFIGURATION_ERROR, calls=1, detail="desir_550")
    scripted = ScriptedInsi(lambda _, __: refused)
    time = FakeTime()
    routed = routed_from(VALI_A28)
    record = (
        await EnrichStep(EnrichSettings(), scripted, clock=time.clock, sleep=time.sleep)(routed)
    ).payload  # type: ignore[arg-type]
    assert (record["outcome"], record["detail"], record["calls"]) == (
        "insi_unavailable",
        "desir_550",
        1,
    )
    assert (scripted.attempts, time.sleeps) == (1, [])
    assert routed.output() == VALI_A28


async def test_an_enriched_message_enriched_again_is_verified_unchanged(
    insi: InsiService,
) -> None:
    step = EnrichStep(EnrichSettings(), insi)
    first = routed_from(VALI_A28)
    assert (await step(first)).outcome == Outcome.ADDED
    second = routed_from(first.output())
    verified = await step(second)
    assert verified.outcome == Outcome.VERIFIED
    assert verified.payload["calls"] == 0  # the cache answered
    assert not second.changed and second.output() == first.output()


async def test_logs_carry_no_patient_data_and_the_record_is_json(insi: InsiService) -> None:
    routed = routed_from(VALI_A28)
    configure_logging("debug", "json")  # the step's line is at debug (one info line a message)
    with capture_logs() as logs:
        result = await EnrichStep(EnrichSettings(), insi)(routed)
    allowed = {
        "route",
        "control_id",
        "message_type",
        "outcome",
        "calls",
        "duration_ms",
        "simulated",
        "error",
        "code",
        "status",
        "event",
        "log_level",
    }
    ours = [entry for entry in logs if entry["event"] == "identity enrichment"]
    assert len(ours) == 1 and set(ours[0]) <= allowed
    assert ours[0]["outcome"] == "added" and ours[0]["simulated"] is True
    text = repr(logs)
    assert not [value for value in PATIENT_DATA if value in text]
    record = json.loads(json.dumps(result.payload))
    assert record["traits_returned"]["birth_name"] == "ADRTROIS"  # the record is where it lives


async def test_never_raises_on_a_truncated_or_mangled_pid(insi: InsiService) -> None:
    """Every prefix of the PID, and every single character deleted from it, is handled."""
    segments = VALI_A28.decode("latin-1").split("\r")
    segment_index = 2
    pid = segments[segment_index]
    variants = [pid[:end] for end in range(len(pid))]
    variants += [pid[:i] + pid[i + 1 :] for i in range(len(pid))]
    step = EnrichStep(EnrichSettings(), insi)
    outcomes = set()
    for variant in variants:
        text = "\r".join([*segments[:segment_index], variant, *segments[segment_index + 1 :]])
        routed = routed_from(text.encode("latin-1"))
        record = (await step(routed)).payload
        outcomes.add(record["outcome"])
        output = routed.output().decode("latin-1")
        if record["outcome"] in ("added", "verified"):
            assert output.count("^INS") == 1 and "VALI" in output
        else:
            assert "^INS" not in output
    assert {"added", "invalid_traits", "not_applicable", "not_found"} <= outcomes


HIDDEN = (
    "MSH|^~\\&|SRC|HOSP|DST|HOSP|20240101120000||ADT^A31^ADT_A05|C043|P|2.5^FRA^2.11"
    "|||||FRA|8859/1\r"
    "EVN||20240101120000\r"
    "PID||297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
    "|IPP001^^^HOSP^PI~297022A02077878^^^1.2.250.1.213.1.4.8^INS-NIR"
    "|160012B02077713^^^&1.2.250.1.213.1.4.8&ISO|ADRTROIS^DOMINIQUE^DOMINIQUE^^^^L||19970226|F"
    "|||^^^^^FRA^BDL^^2A020|||||||||||||||||||||VALI~HOMA\r"
    "ZFD|||N|N|INSI|20231201101010|CN\r"
).encode("latin-1")
INS_OID = re.compile(r"1\.2\.250\.1\.213\.1\.4\.(?:8|9|10|11)\b")


def ins_looking(text: str) -> list[tuple[int, str]]:
    """(field, repetition) of every identifier in PID-2/3/4 typed INS or naming an INS OID."""
    pid = next((line for line in text.split("\r") if line.startswith("PID|")), "")
    fields = pid.split("|")
    return [
        (number, rep)
        for number in (2, 3, 4)
        if number < len(fields)
        for rep in fields[number].split("~")
        if rep.split("^")[4:5] == ["INS"] or INS_OID.search(rep)
    ]


async def test_no_mangled_message_ever_leaves_with_an_unverified_or_second_ins(
    insi: InsiService,
) -> None:
    """Every prefix of a PID hiding INS in PID-2, PID-3 (OID in HD-1) and PID-4, and every
    single character deleted from it: an INS leaves only when added or verified, only one,
    only in PID-3, and only with a clean VALI."""
    segments = HIDDEN.decode("latin-1").split("\r")
    pid = segments[2]
    variants = [pid[:end] for end in range(len(pid))]
    variants += [pid[:i] + pid[i + 1 :] for i in range(len(pid))]
    step = EnrichStep(EnrichSettings(), insi)
    outcomes = set()
    for variant in variants:
        text = "\r".join([*segments[:2], variant, *segments[3:]])
        routed = routed_from(text.encode("latin-1"))
        outcome = (await step(routed)).outcome
        outcomes.add(outcome)
        output = routed.output().decode("latin-1")
        found = ins_looking(output)
        if outcome in ("added", "verified"):
            assert found == [
                (3, "297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS")
            ]
            assert output.split("\r")[2].split("|")[32] in ("VALI", "VALI~HOMA")
        else:
            assert found == [], (outcome, variant)
    assert {"incoherent", "invalid_traits", "not_applicable"} <= outcomes


async def test_a_bug_while_enriching_fails_closed_every_ins_removed() -> None:
    """Not INSi's answer but the step itself breaking: the message goes on without any INS
    it carried (none of them can be said verified), the decision says `error`, and the
    log line names no patient."""
    carried = VALI_A28.replace(
        b"PID|||IPP001^^^HOSP^PI|",
        b"PID||297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
        b"|IPP001^^^HOSP^PI~297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS|",
    )

    def broken(attempt: int, traits: IdentityTraits) -> SearchOutcome:
        raise RuntimeError("a bug")

    routed = routed_from(carried)
    configure_logging("info", "json")
    with capture_logs() as logs:
        result = await EnrichStep(EnrichSettings(), ScriptedInsi(broken))(routed)
    assert (result.outcome, result.detail) == ("error", "RuntimeError")
    assert routed.changed and not routed.failed
    out = routed.output()
    assert b"INS-NIR" not in out and b"297022A02077878" not in out
    assert b"IPP001^^^HOSP^PI" in out and b"|VALI" in out
    (line,) = [entry for entry in logs if entry["log_level"] == "error"]
    assert line["event"] == "identity enrichment failed, every INS removed"
    assert not any(value in json.dumps(line, default=str) for value in PATIENT_DATA)
