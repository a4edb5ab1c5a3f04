"""A step before the ACK that fails does not cost the sender its message: it is stored,
acknowledged and routed as if the step had passed, with the failure recorded."""

from __future__ import annotations

from pathlib import Path

from engine.config.settings import RouteSettings
from engine.handoffs import Stored
from engine.hl7.ack import Outcome
from engine.inbound.intake import Intake
from engine.routing.route import RoutePlan
from engine.steps.pipeline import BoundStep, RoutedMessage, StepResult
from engine.store.sqlite import SqliteStore
from tests.conftest import fixed_acks
from tests.support.intake import receive
from tests.support.messages import adt

ROUTE = RouteSettings(name="adt", listen="127.0.0.1:0")


def explode(routed: RoutedMessage) -> StepResult:
    raise ValueError("a bug")


async def waits(routed: RoutedMessage) -> StepResult:  # not allowed before the ACK
    return StepResult("kept")


async def test_a_failing_or_waiting_step_before_the_ack_lets_the_message_in(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    handed: list[RoutedMessage] = []
    stored = Stored()
    stored.connect(handed.append)
    try:
        for number, step in enumerate((explode, waits)):
            plan = RoutePlan(ROUTE, before_ack=[BoundStep("check", "test", step)])
            intake = Intake(ROUTE, store, fixed_acks(), plan, stored)
            verdict = await receive(intake, adt(f"S{number}"))
            assert verdict.outcome is Outcome.ACCEPTED and b"MSA|AA|" in (verdict.reply or b"")
        received = await store.received(0, 10)
        assert [message.control_id for message in received] == ["S0", "S1"]  # to be routed
        assert handed == []  # the router reads them from the store, steps not half-run
        assert [(d.step, d.outcome, d.detail) for d in await store.decisions(1)] == [
            ("check", "error", "ValueError")
        ]
        assert [(d.step, d.outcome, d.detail) for d in await store.decisions(2)] == [
            ("check", "error", "TypeError")
        ]
    finally:
        await store.close()
