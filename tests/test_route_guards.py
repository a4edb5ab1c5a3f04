"""Outbound guards in the core: run on whatever leaves, a route's output and each
destination's own copy, and a message they cannot vouch for goes nowhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.config.settings import DestinationSettings, RouteSettings
from engine.hl7.charset import CharsetPolicy
from engine.hl7.patterns import Patterns
from engine.routing.route import DestinationPlan, RoutePlan
from engine.routing.router import Router, routed_message
from engine.steps.pipeline import BoundGuard, BoundStep, Guard, RoutedMessage, StepResult
from engine.store.sqlite import SqliteStore
from tests.delivery.harness import store_messages
from tests.support.messages import adt

ROUTE = RouteSettings(
    name="adt",
    listen="127.0.0.1:0",
    destinations=[
        DestinationSettings(name="plain", file="/x"),
        DestinationSettings("own", file="/y"),
    ],
)


def secret_remover(routed: RoutedMessage) -> StepResult | None:
    """A guard: no PID-19 leaves (a stand-in for any invariant on what leaves)."""
    index = next(routed.message.indexes("PID"))
    pid = routed.message.segment_at(index)
    if not pid.field(19):
        return None
    routed.message.replace(index, pid.with_field(19, ""))
    routed.changed = True
    return StepResult("removed", "pid_19")


def write_secret(routed: RoutedMessage) -> StepResult:
    """A destination step that writes what the guard forbids."""
    index = next(routed.message.indexes("PID"))
    routed.message.replace(index, routed.message.segment_at(index).with_field(19, "SECRET"))
    routed.changed = True
    return StepResult("set")


def failing(routed: RoutedMessage) -> StepResult | None:
    raise RuntimeError("a bug")


def plan(guard: Guard = secret_remover) -> RoutePlan:
    destinations = [
        DestinationPlan("plain", Patterns(["*"])),
        DestinationPlan("own", Patterns(["*"]), [BoundStep("secret", "set", write_secret)]),
    ]
    return RoutePlan(ROUTE, destinations=destinations, guards=[BoundGuard("guard", guard)])


def routed(raw: bytes) -> RoutedMessage:
    return routed_message(1, "adt", raw, CharsetPolicy())


def pid_19(payload: bytes | None) -> str:
    assert payload is not None
    message = routed(payload).message
    return message.segment_at(next(message.indexes("PID"))).field(19)


async def test_the_guard_runs_on_the_route_output_and_on_each_destinations_own_copy() -> None:
    message = routed(adt()).message
    index = next(message.indexes("PID"))
    message.replace(index, message.segment_at(index).with_field(19, "SECRET"))
    routing = await plan().route(routed(message.to_text().encode("latin-1")))
    deliveries = dict(routing.deliveries)
    assert pid_19(deliveries["plain"]) == "" and pid_19(deliveries["own"]) == ""
    guarded = [(d.destination, d.outcome) for d in routing.decisions if d.kind == "guard"]
    assert guarded == [("", "removed"), ("own", "removed")]


async def test_a_guard_that_raises_withholds_the_message() -> None:
    routing = await plan(failing).route(routed(adt()))
    assert routing.dropped and routing.deliveries == []
    assert [(d.kind, d.outcome, d.detail) for d in routing.decisions] == [
        ("guard", "error", "RuntimeError")
    ]


async def test_a_message_the_router_cannot_read_is_not_forwarded_unchecked(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    try:
        await store_messages(store, "adt", [adt("BAD1", charset="NO-SUCH-CHARSET")])
        await Router(store, {"adt": plan()}).route_pending()
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "engine.db") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
        assert db.execute("SELECT outcome FROM step_decisions").fetchall() == [("error",)]
