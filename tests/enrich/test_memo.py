"""The step's memo changes nothing but the cost: a message whose PID and ZFD were seen gets
exactly what working it out afresh would give, and anything that could change the answer
(INSi's answer, its age for a verification, the ZFD, the event, the traits) is worked out
again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from engine.enrich.memo import Effect, EnrichMemo, Search
from engine.enrich.settings import EnrichSettings
from engine.enrich.step import EnrichStep
from engine.ins.service import InsiService, open_insi_service
from engine.ins.settings import InsiSettings
from engine.ins.traits import IdentityTraits
from engine.steps.pipeline import RoutedMessage
from tests.enrich.conftest import routed_from

MSH = (
    "MSH|^~\\&|SRC|HOSP|DST|HOSP|20240101120000||ADT^{event}^ADT_A05|{control_id}|P|2.5"
    "|||||FRA|8859/1\r"
)
PID_VALI = (
    "PID|||IPP1^^^HOSP^PI||ADRUN^ZOE^ZOE^^^^L||19751231|F|||^^^^^FRA^BDL^^63220"
    + "|" * 21
    + "VALI\r"
)
INS = "275126322074974^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
PID_WITH_INS = PID_VALI.replace("IPP1^^^HOSP^PI", f"IPP1^^^HOSP^PI~{INS}")


def message(control_id: str, pid: str = PID_VALI, event: str = "A28", rest: str = "") -> bytes:
    return (MSH.format(event=event, control_id=control_id) + pid + "PV1||N\r" + rest).encode()


@pytest.fixture
async def insi() -> AsyncIterator[InsiService]:
    service = await open_insi_service(InsiSettings())
    yield service
    await service.aclose()


async def enriched(step: EnrichStep, raw: bytes) -> tuple[RoutedMessage, dict[str, object]]:
    routed = routed_from(raw)
    result = await step(routed)
    return routed, result.payload


@pytest.mark.parametrize(
    "raw",
    [
        message("C1"),  # added
        message("C1", PID_WITH_INS, "A31"),  # verified
        message("C1", PID_VALI.replace("VALI", "PROV")),  # no call
        message("C1", PID_WITH_INS.replace("VALI", "PROV"), "A03"),  # passed through, INS removed
        message("C1", PID_VALI.replace("19751231", "19751232")),  # invalid traits
        message("C1", PID_VALI, "A28", "ZFD|||N|Y|SM||CN\r"),  # not qualifiable
        message("C1", PID_VALI.replace("ADRUN^ZOE^ZOE", "ADRUN^ZOE^ZOE MARIE")),  # incoherent
    ],
)
async def test_a_replay_gives_what_working_it_out_afresh_gives(
    insi: InsiService, raw: bytes
) -> None:
    memoised = EnrichStep(EnrichSettings(), insi)
    await enriched(memoised, raw)  # worked out and remembered
    second = raw.replace(b"|C1|", b"|C2|")
    replayed, replayed_record = await enriched(memoised, second)
    afresh, afresh_record = await enriched(EnrichStep(EnrichSettings(), insi), second)
    assert replayed.output() == afresh.output()
    assert replayed.changed is afresh.changed
    assert replayed_record == afresh_record


async def test_a_replayed_record_has_its_own_control_id_and_calls(insi: InsiService) -> None:
    step = EnrichStep(EnrichSettings(), insi)
    _, first = await enriched(step, message("C1"))
    _, second = await enriched(step, message("C2"))
    assert (first["control_id"], first["calls"]) == ("C1", 1)  # INSi was called
    assert second == {**first, "control_id": "C2", "calls": 0}  # INSi's answer was reused


class WallClock:
    """Now, moved forward by the test."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def test_a_verification_is_worked_out_again_once_its_answer_is_too_old() -> None:
    clock = WallClock()
    service = await open_insi_service(InsiSettings(verify_max_age_s=60), clock=clock)
    try:
        step = EnrichStep(EnrichSettings(), service)
        _, first = await enriched(step, message("C1", PID_WITH_INS, "A31"))
        clock.now += dt.timedelta(seconds=30)
        _, recent = await enriched(step, message("C2", PID_WITH_INS, "A31"))
        clock.now += dt.timedelta(seconds=31)
        later, aged = await enriched(step, message("C3", PID_WITH_INS, "A31"))
    finally:
        await service.aclose()
    assert [r["outcome"] for r in (first, recent, aged)] == ["verified"] * 3
    assert (first["calls"], recent["calls"], aged["calls"]) == (1, 0, 1)
    assert recent["called_at"] == first["called_at"] != aged["called_at"]
    zfd = later.message.segment("ZFD")
    assert zfd is not None and zfd.field(6) == clock.now.strftime("%Y%m%d%H%M%S+0000")


async def test_the_same_pid_with_another_zfd_or_event_is_worked_out_again(
    insi: InsiService,
) -> None:
    step = EnrichStep(EnrichSettings(), insi)
    _, added = await enriched(step, message("C1"))
    _, flagged = await enriched(step, message("C2", rest="ZFD|||N|Y|SM||CN\r"))
    _, passed = await enriched(step, message("C3", event="A03"))
    assert [r["outcome"] for r in (added, flagged, passed)] == [
        "added",
        "not_qualifiable",
        "not_applicable",
    ]


def test_the_memo_is_bounded_and_keeps_the_most_recently_used() -> None:
    memo = EnrichMemo(size=2)
    traits = IdentityTraits("A", ("B",), "F", dt.date(2000, 1, 1))
    effect = Effect(Search(traits, False), None, "PID", None, {"outcome": "not_applicable"})
    keys = [("ADT", "A28", "|^~\\&", f"PID|{n}", None, dt.date(2026, 1, 1)) for n in range(3)]
    memo.put(keys[0], effect)
    memo.put(keys[1], effect)
    assert memo.get(keys[0]) is effect  # used: kept
    memo.put(keys[2], effect)
    assert memo.get(keys[1]) is None and memo.get(keys[0]) is effect
