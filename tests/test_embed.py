"""The embedding API: a route's steps and destinations on one message, in another program,
without listener or store; async and sync, on the in-process INSi simulator."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.config.settings import DestinationSettings, RouteSettings
from engine.embed import RouteRunner, SyncRouteRunner
from engine.hl7.ack import Outcome
from engine.routing.route import RoutePlan
from engine.steps.kind import Resources
from engine.steps.pipeline import BoundStep, RoutedMessage, StepResult

VALI_A28 = (
    "MSH|^~\\&|SRC|HOSP|DST|HOSP|20240101120000||ADT^A28^ADT_A05|C042|P|2.5^FRA^2.11"
    "|||||FRA|8859/1\r"
    "EVN||20240101120000\r"
    "PID|||IPP001^^^HOSP^PI||ADRTROIS^DOMINIQUE^DOMINIQUE^^^^L||19970226|F"
    "|||^^^^^FRA^BDL^^2A020|||||||||||||||||||||VALI\r"
    "PV1||N\r"
).encode("latin-1")
NOON = dt.datetime(2025, 3, 4, 12, 0, 0, tzinfo=dt.UTC)


def config_file(tmp_path: Path) -> Path:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "never.db"}"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\naccept = ["ADT^*"]\n'
        '[[routes.destinations]]\nname = "ehr"\nfile = "ehr"\n'
        '[[routes.destinations]]\nname = "archive"\nfile = "archive"\n'
        '[[routes]]\nname = "lab"\nlisten = "127.0.0.1:1"\nenrich = false\n'
        '[[routes.destinations]]\nname = "lis"\nfile = "lis"\n',
        encoding="utf-8",
    )
    return config


async def test_a_message_goes_through_the_route_as_the_engine_would_send_it(
    tmp_path: Path,
) -> None:
    async with await RouteRunner.open(config_file(tmp_path), clock=lambda: NOON) as runner:
        processed = await runner.process(VALI_A28)
        refused = await runner.process(VALI_A28.replace(b"ADT^A28^ADT_A05", b"ORU^R01"))
    assert processed.refusal is None and not processed.dropped
    assert [(d.step, d.kind, d.outcome) for d in processed.decisions] == [
        ("ins_enrich", "ins_enrich", "added")
    ]
    output = processed.output
    assert output is not None
    assert b"297022A02077878^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS" in output
    assert output.endswith(b"ZFD|||||INSI|20250304120000+0000\r")  # the clock given
    assert processed.destinations == {"ehr": output, "archive": output}
    assert refused.refusal is not None and refused.refusal.outcome is Outcome.REJECTED
    assert refused.refusal.error.location == "MSH^1^9^1"
    assert (refused.destinations, refused.decisions, refused.output) == ({}, [], None)
    assert not (tmp_path / "never.db").exists()


def test_the_sync_runner_needs_no_event_loop(tmp_path: Path) -> None:
    with SyncRouteRunner(config_file(tmp_path), "lab") as runner:
        processed = runner.process(VALI_A28)
    assert processed.decisions == []  # enrich = false: no step at all
    assert processed.destinations == {"lis": VALI_A28}


async def test_an_unknown_route_is_named(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match=r"no route nope \(routes: adt, lab\)"):
        await RouteRunner.open(config_file(tmp_path), "nope")


async def test_a_failing_step_before_the_ack_is_routed_as_the_engine_routes_it() -> None:
    """The engine stores such a message as received and its route steps run afresh from
    the store; the embedded route does the same, so the steps after the ACK still run."""

    def explode(routed: RoutedMessage) -> StepResult:
        raise ValueError("a bug")

    def mark(routed: RoutedMessage) -> StepResult:
        routed.message.replace(0, routed.message.msh.with_field(5, "RAN"))
        routed.changed = True
        return StepResult("ran")

    route = RouteSettings(
        name="adt", listen="127.0.0.1:0", destinations=[DestinationSettings(name="d", file="d")]
    )
    plan = RoutePlan(
        route,
        [BoundStep("after", "test", mark), BoundStep("then", "test", lambda _: StepResult("ok"))],
        before_ack=[BoundStep("check", "test", explode)],
    )
    async with RouteRunner(plan, Resources()) as runner:
        processed = await runner.process(VALI_A28)
    assert [(d.step, d.outcome, d.detail) for d in processed.decisions] == [
        ("check", "error", "ValueError"),
        ("after", "ran", ""),
        ("then", "ok", ""),
    ]
    assert processed.output is not None and b"|RAN|" in processed.output
    assert b"|RAN|" in processed.destinations["d"]


@pytest.mark.parametrize(
    ("raw", "ack", "code"),
    [
        (b"hello, not HL7", "AR", 100),
        (VALI_A28.replace(b"8859/1", b"KLINGON"), "AE", 103),
        (VALI_A28.replace(b"ADT^A28^ADT_A05", b"ORU^R01"), "AR", 200),
    ],
)
async def test_bytes_the_listener_refuses_come_back_with_its_ack_code_and_err(
    raw: bytes, ack: str, code: int
) -> None:
    route = RouteSettings(name="adt", listen="127.0.0.1:0", accept=["ADT^*"])
    async with RouteRunner(RoutePlan(route), Resources()) as runner:
        processed = await runner.process(raw)
    assert processed.refusal is not None and processed.ack == ack
    assert processed.refusal.error.code == code
    assert processed.output is None and processed.destinations == {}


async def test_an_ack_is_neither_answered_nor_routed() -> None:
    route = RouteSettings(
        name="adt", listen="127.0.0.1:0", destinations=[DestinationSettings(name="d", file="d")]
    )
    ack = VALI_A28.replace(b"ADT^A28^ADT_A05", b"ACK^A28^ACK")
    async with RouteRunner(RoutePlan(route), Resources()) as runner:
        processed = await runner.process(ack)
    assert (processed.ack, processed.refusal, processed.dropped) == (None, None, True)
    assert processed.destinations == {}
