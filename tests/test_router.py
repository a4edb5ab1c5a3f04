"""The router's sliding window: steps of many messages at once, commits in arrival order."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import structlog

from engine.config.settings import DestinationSettings, RouteSettings
from engine.errors import StoreError
from engine.handoffs import Stored
from engine.hl7.ack import Outcome
from engine.hl7.charset import CharsetPolicy
from engine.hl7.patterns import Patterns
from engine.inbound.intake import Intake
from engine.routing.route import DestinationPlan, RoutePlan
from engine.routing.router import Router, routed_message
from engine.steps.pipeline import BoundStep, RoutedMessage, StepResult
from engine.store.sqlite import SqliteStore
from tests.conftest import fixed_acks
from tests.delivery.harness import eventually, store_messages
from tests.support.intake import receive
from tests.support.messages import adt

ROUTE = RouteSettings(
    name="adt", listen="127.0.0.1:0", destinations=[DestinationSettings(name="d", file="/x")]
)


def outbox_order(path: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [
            row[0]
            for row in db.execute(
                "SELECT m.control_id FROM outbox o JOIN messages m ON m.id = o.message_id"
                " ORDER BY o.id"
            )
        ]


def outbox_holds(path: str, count: int) -> Callable[[], Awaitable[bool]]:
    """A condition for `eventually`: `count` messages are in the outbox."""

    async def condition() -> bool:
        return len(outbox_order(path)) == count

    return condition


async def test_a_slow_first_message_holds_back_commits_not_the_other_steps(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    release_first = asyncio.Event()
    others_stepped = asyncio.Event()
    stepped: list[str] = []

    async def step(routed: RoutedMessage) -> StepResult:
        if routed.header.control_id == "M0":
            await release_first.wait()
        stepped.append(routed.header.control_id)
        if len(stepped) == 7:
            others_stepped.set()
        return StepResult("ok")

    await store_messages(store, "adt", [adt(f"M{n}") for n in range(20)])
    router = Router(store, {"adt": RoutePlan(ROUTE, [BoundStep("s", "test", step)])}, window=8)
    running = asyncio.create_task(router.run())
    try:
        # The other steps of the window finish while M0 waits (30 s: a hang guard).
        await asyncio.wait_for(others_stepped.wait(), 30)
        assert stepped == [f"M{n}" for n in range(1, 8)]
        assert outbox_order(store.path) == []  # nothing overtakes M0
        release_first.set()
        await eventually(outbox_holds(store.path, 20))
        assert outbox_order(store.path) == [f"M{n}" for n in range(20)]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await store.close()


async def test_steps_finishing_in_reverse_order_are_committed_in_arrival_order(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))

    async def step(routed: RoutedMessage) -> StepResult:
        await asyncio.sleep((50 - routed.message_id) / 2000)  # later messages finish first
        return StepResult("ok")

    await store_messages(store, "adt", [adt(f"R{n:02d}") for n in range(50)])
    router = Router(store, {"adt": RoutePlan(ROUTE, [BoundStep("s", "test", step)])}, window=16)
    assert await router.route_pending() == 50
    assert outbox_order(store.path) == [f"R{n:02d}" for n in range(50)]
    await store.close()


async def test_steps_that_wait_and_steps_that_do_not_are_committed_in_arrival_order(
    tmp_path: Path,
) -> None:
    """Steps that finish at once run in the router's pass, those that wait go on meanwhile;
    each sees its own message's log context, even after waiting, and none leaks out."""
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    gates = {f"W{n}": asyncio.Event() for n in range(0, 10, 2)}
    seen: list[tuple[str, object]] = []

    async def step(routed: RoutedMessage) -> StepResult:
        control_id = routed.header.control_id
        gate = gates.get(control_id)
        if gate is not None:
            await gate.wait()
        seen.append((control_id, structlog.contextvars.get_contextvars().get("control_id")))
        return StepResult("ok")

    names = [f"W{n}" for n in range(10)]
    await store_messages(store, "adt", [adt(name) for name in names])
    router = Router(
        store, {"adt": RoutePlan(ROUTE, [BoundStep("s", "test", step, inline=True)])}, window=16
    )
    routing = asyncio.create_task(router.route_pending())

    async def others_stepped() -> bool:
        return len(seen) == 5

    try:
        await eventually(others_stepped)
        assert [control_id for control_id, _ in seen] == names[1::2]
        assert outbox_order(store.path) == []  # nothing overtakes W0
        for gate in reversed(gates.values()):
            gate.set()
        assert await routing == 10
    finally:
        routing.cancel()
        await store.close()
    assert outbox_order(store.path) == names
    assert all(control_id == bound for control_id, bound in seen)
    assert structlog.contextvars.get_contextvars() == {}


@pytest.mark.parametrize("inline", [False, True])
async def test_only_a_kind_that_allows_it_starts_its_steps_in_the_routers_task(
    tmp_path: Path, inline: bool
) -> None:
    """A step kind not marked `inline` (a third party's, say) runs in a task of its own: a
    timeout it enters before its first wait belongs to its message, never to the router."""
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    tasks: list[asyncio.Task[object] | None] = []

    async def step(routed: RoutedMessage) -> StepResult:
        tasks.append(asyncio.current_task())
        return StepResult("ok")

    await store_messages(store, "adt", [adt("T1"), adt("T2")])
    plan = RoutePlan(ROUTE, [BoundStep("s", "test", step, inline=inline)])
    router = Router(store, {"adt": plan})
    routing = asyncio.create_task(router.route_pending())
    try:
        assert await routing == 2
    finally:
        await store.close()
    assert len(tasks) == 2
    assert all((task is routing) is inline for task in tasks)
    assert outbox_order(store.path) == ["T1", "T2"]


async def test_steps_waiting_when_routing_stops_are_cancelled_where_they_wait(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    waiting, cleaned_up = asyncio.Event(), asyncio.Event()
    cancelled: list[object] = []

    async def step(routed: RoutedMessage) -> StepResult:
        waiting.set()
        try:
            await asyncio.Event().wait()  # an answer that never comes
        except asyncio.CancelledError:
            cancelled.append(structlog.contextvars.get_contextvars().get("control_id"))
            cleaned_up.set()
            raise
        return StepResult("ok")

    await store_messages(store, "adt", [adt("C1")])
    router = Router(store, {"adt": RoutePlan(ROUTE, [BoundStep("s", "test", step, inline=True)])})
    running = asyncio.create_task(router.run())
    try:
        await asyncio.wait_for(waiting.wait(), 30)  # a hang guard
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    await asyncio.wait_for(cleaned_up.wait(), 30)  # in the step's own task
    assert cancelled == ["C1"]
    assert outbox_order(store.path) == []
    assert [status for _, status in stored_status(store.path)] == ["received"]
    await store.close()


async def test_a_failed_routing_commit_is_retried_and_nothing_is_lost_or_reordered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    real_route_messages = store.route_messages
    failures = iter([True])  # the first commit of the router fails (a full disk, say)

    async def failing_once(*args: object) -> None:
        if next(failures, False):
            raise StoreError("store commit failed: OperationalError")
        await real_route_messages(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "route_messages", failing_once)
    monkeypatch.setattr("engine.routing.router.POLL_S", 0.01)
    await store_messages(store, "adt", [adt(f"F{n}") for n in range(10)])
    router = Router(store, {"adt": RoutePlan(ROUTE)}, window=4)
    running = asyncio.create_task(router.run())
    try:
        await eventually(outbox_holds(store.path, 10))
        assert outbox_order(store.path) == [f"F{n}" for n in range(10)]
        assert not running.done()  # the router survived the failure
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await store.close()


async def test_a_message_announced_after_it_was_read_is_not_kept(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    await store_messages(store, "adt", [adt("A1"), adt("A2")])
    router = Router(store, {"adt": RoutePlan(ROUTE)})
    assert await router.route_pending() == 2
    late = routed_message(2, "adt", adt("A2"), CharsetPolicy())  # the intake's call, late
    router.stored(late)
    early = routed_message(3, "adt", adt("A3"), CharsetPolicy())
    router.stored(early)
    assert list(router._fresh) == [3]
    await store.close()


def stored_status(path: str) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT control_id, status FROM messages ORDER BY id"))


async def test_each_step_decision_is_kept_and_a_failing_step_forwards_what_the_steps_before_made(
    tmp_path: Path,
) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))

    def rename(routed: RoutedMessage) -> StepResult:
        routed.message.replace(0, routed.message.msh.with_field(5, "EHR"))
        routed.changed = True
        return StepResult("set", "MSH-5")

    def explode(routed: RoutedMessage) -> StepResult:
        if routed.header.control_id == "B2":
            routed.message.replace(0, routed.message.msh.with_field(6, "HALF"))
            routed.changed = True
            raise ValueError("a bug")
        return StepResult("kept")

    steps = [BoundStep("rename", "set", rename), BoundStep("check", "test", explode)]
    await store_messages(store, "adt", [adt("B1"), adt("B2")])
    router = Router(store, {"adt": RoutePlan(ROUTE, steps)})
    assert await router.route_pending() == 2
    with sqlite3.connect(store.path) as db:
        payloads = [row[0] for row in db.execute("SELECT payload FROM outbox ORDER BY id")]
    assert b"|EHR|" in payloads[0]
    # What the first step made (an INS it removed stays removed), not what the failing one
    # half-wrote.
    assert b"|EHR|" in payloads[1] and b"HALF" not in payloads[1]
    first, second = await store.decisions(1), await store.decisions(2)
    assert [(d.step, d.kind, d.outcome, d.detail) for d in first] == [
        ("rename", "set", "set", "MSH-5"),
        ("check", "test", "kept", ""),
    ]
    assert [(d.step, d.outcome, d.detail) for d in second] == [
        ("rename", "set", "MSH-5"),
        ("check", "error", "ValueError"),
    ]
    await store.close()


async def test_a_dropped_message_is_kept_and_listed_as_dropped(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))

    def no_a08(routed: RoutedMessage) -> StepResult:
        if routed.header.trigger == "A08":
            return StepResult("dropped", "type", drop=True)
        return StepResult("kept")

    nowhere = RouteSettings(name="lab", listen="127.0.0.1:0")  # no destination at all
    await store_messages(store, "adt", [adt("D1"), adt("D2", "A08")])
    await store_messages(store, "lab", [adt("L1")])
    plans = {
        "adt": RoutePlan(ROUTE, [BoundStep("no-a08", "filter", no_a08)]),
        "lab": RoutePlan(nowhere),
    }
    assert await Router(store, plans).route_pending() == 3
    assert outbox_order(store.path) == ["D1"]
    assert stored_status(store.path) == [("D1", "routed"), ("D2", "dropped"), ("L1", "dropped")]
    dropped = await store.dropped_messages(None, 10)
    assert [(m.control_id, m.route, m.step, m.outcome, m.detail) for m in dropped] == [
        ("L1", "lab", "route", "dropped", "no_destination"),
        ("D2", "adt", "no-a08", "dropped", "type"),
    ]
    assert [m.control_id for m in await store.dropped_messages("adt", 10)] == ["D2"]
    await store.close()


async def test_a_failing_destination_step_sends_what_the_route_steps_made(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "engine.db"))

    def mark(routed: RoutedMessage) -> StepResult:
        routed.message.replace(0, routed.message.msh.with_field(5, "ROUTED"))
        routed.changed = True
        return StepResult("set")

    def explode(routed: RoutedMessage) -> StepResult:
        routed.message.replace(0, routed.message.msh.with_field(6, "HALF"))
        raise ValueError("a bug after a change")

    route = RouteSettings(
        name="adt",
        listen="127.0.0.1:0",
        destinations=[DestinationSettings(name=n, file="/x") for n in ("ehr", "lab")],
    )
    destinations = [
        DestinationPlan("ehr", Patterns(["*"])),
        DestinationPlan("lab", Patterns(["*"]), [BoundStep("boom", "test", explode)]),
    ]
    plan = RoutePlan(route, [BoundStep("mark", "set", mark)], (), destinations)
    await store_messages(store, "adt", [adt("X1")])
    assert await Router(store, {"adt": plan}).route_pending() == 1
    with sqlite3.connect(store.path) as db:
        payloads = dict(db.execute("SELECT destination, payload FROM outbox"))
    assert payloads["lab"] == payloads["ehr"]
    assert b"|ROUTED|" in payloads["lab"] and b"HALF" not in payloads["lab"]
    assert [(d.destination, d.step, d.outcome) for d in await store.decisions(1)] == [
        ("", "mark", "set"),
        ("lab", "boom", "error"),
    ]
    await store.close()


async def test_messages_handed_over_by_the_intake_are_routed_in_order_with_their_gaps(
    tmp_path: Path,
) -> None:
    """The intake hands the router what it stored; one dropped before the ACK is passed
    over, one whose step failed is read from the store, so nothing is lost or reordered."""
    store = await SqliteStore.open(str(tmp_path / "engine.db"))

    def check(routed: RoutedMessage) -> StepResult:
        control_id = routed.header.control_id
        if control_id.startswith("F"):
            raise ValueError("a bug")
        return StepResult(
            "dropped" if control_id.startswith("D") else "kept", drop=control_id.startswith("D")
        )

    plan = RoutePlan(ROUTE, before_ack=[BoundStep("check", "test", check)])
    router = Router(store, {"adt": plan})
    stored = Stored()
    stored.connect(router.stored)
    intake = Intake(ROUTE, store, fixed_acks(), plan, stored)
    names = ["M0", "D1", "F2", "M3", "D4", "M5"]
    try:
        for name in names:
            verdict = await receive(intake, adt(name))
            assert verdict.outcome is Outcome.ACCEPTED
        assert sorted(router._fresh) == [1, 2, 4, 5, 6]  # not 3: its step failed
        while await router.route_pending():
            pass
        assert outbox_order(store.path) == ["M0", "F2", "M3", "M5"]
        assert await store.received(0, 10) == []
        assert router._fresh == {}  # nothing passed over is kept
    finally:
        await store.close()
