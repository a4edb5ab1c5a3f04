"""Delivery workers on a real SQLite file, sending over loopback to a real MLLP receiver:
order, blocking and parking, lanes, and what an operator's skip and resend do."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from structlog.testing import capture_logs

from engine.config.settings import RouteSettings
from engine.coordination.leases import SAFETY_S, HeldLease
from engine.delivery import worker
from engine.delivery.service import open_sender
from engine.delivery.worker import LaneWorker
from engine.store.base import EntryStatus, OutboxEntry
from engine.store.lanes import lane_of
from engine.store.sqlite import SqliteStore
from engine.testing.clock import ManualClock
from engine.testing.receiver import Received, Receiver, Reply, ack, ack_bytes
from tests.delivery.conftest import Route
from tests.delivery.harness import delivering, entries, eventually, route_all, store_messages
from tests.support.messages import adt
from tests.support.waiting import HANG_GUARD_S


async def queue(store: SqliteStore, routes: list, payloads: list[bytes]) -> None:
    await store_messages(store, "adt", payloads)
    await route_all(store, routes)


class WindowRecorder(SqliteStore):
    """The real store, remembering how many entries each read handed a worker."""

    windows: list[int]

    async def pending_entries(self, *args: object, **kwargs: object) -> list[OutboxEntry]:
        found = await super().pending_entries(*args, **kwargs)  # type: ignore[arg-type]
        self.windows.append(len(found))
        return found


@pytest.mark.system
async def test_ten_thousand_messages_arrive_in_order_read_a_window_at_a_time(
    tmp_path, route: Route
) -> None:
    store = await WindowRecorder.open(str(tmp_path / "engine.db"))
    store.windows = []
    try:
        async with Receiver() as downstream:
            routes = [route(mllp=downstream.address)]
            expected = [f"M{number:05d}" for number in range(10_000)]
            await queue(
                store, routes, [adt(c, patient_id=f"P{i % 7}") for i, c in enumerate(expected)]
            )
            async with delivering(store, *routes):
                await downstream.wait_for(len(expected))
                await eventually(lambda: _nothing_pending(store))
            assert downstream.control_ids == expected
            assert downstream.connections == 1  # one persistent connection
            assert max(store.windows) <= worker.WINDOW
    finally:
        await store.close()


async def _nothing_pending(store: SqliteStore) -> bool:
    return not await store.queue_status()


class MarkRecorder(SqliteStore):
    """The real store, remembering the entries of each batch of delivered marks, and holding
    the first batch's write until `release` is set."""

    batches: list[list[int]]
    release: asyncio.Event

    async def mark_delivered_many(self, *args: object, **kwargs: object) -> list[bool]:
        marks: list[tuple[int, str]] = args[0]  # type: ignore[assignment]
        self.batches.append([entry_id for entry_id, _ in marks])
        if len(self.batches) == 1:
            await self.release.wait()
        return await super().mark_delivered_many(*args, **kwargs)  # type: ignore[arg-type]


async def test_marks_kept_while_a_batch_is_written_go_together_in_the_next(
    tmp_path, route: Route
) -> None:
    store = await MarkRecorder.open(str(tmp_path / "engine.db"))
    store.batches, store.release = [], asyncio.Event()
    try:
        async with Receiver() as downstream:
            routes = [route(mllp=downstream.address)]
            await queue(store, routes, [adt(f"C{n}") for n in range(1, 22)])
            async with delivering(store, *routes):
                # C21 is sent after C20's mark is kept: all while C1's is being written.
                await downstream.wait_for(21)
                store.release.set()
                await eventually(lambda: _nothing_pending(store))
        first, second, *_ = store.batches
        assert len(first) == 1 and len(second) >= 19  # C2..C20, and C21 if it was acked by then
        marked = [entry_id for batch in store.batches for entry_id in batch]
        assert marked == sorted(marked) and len(marked) == 21
    finally:
        await store.close()


async def test_failing_head_blocks_its_queue_visibly_until_it_succeeds(
    store: SqliteStore, route: Route
) -> None:
    released = False

    def answer(received: Received) -> Reply:
        if received.control_id == "C2" and not released:
            return ack(received, "AE", error_code="207", text="DUPONT JEAN not found")
        return ack(received)

    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address)]
        await queue(store, routes, [adt(f"C{n}") for n in range(1, 6)])
        with capture_logs() as logs:
            async with delivering(store, *routes):
                await downstream.wait_for(4)  # C1 and three attempts at C2
                (status,) = await store.queue_status()
                assert (status.pending, status.parked) == (4, 0)
                assert status.head_attempts >= 2
                assert status.last_error == "AE (ERR 207)"  # codes only, no downstream text
                released = True
                await eventually(lambda: _nothing_pending(store))
    ids = downstream.control_ids
    assert ids[0] == "C1" and set(ids[1:-3]) == {"C2"} and ids[-3:] == ["C3", "C4", "C5"]
    failures = [entry for entry in logs if entry["event"] == "delivery failed, will retry"]
    assert [entry["attempts"] for entry in failures] == list(range(1, len(failures) + 1))
    assert all(
        {"destination", "control_id", "attempts", "error", "delay_s"} <= entry.keys()
        and entry["log_level"] == "warning"
        and "DUPONT" not in str(entry)
        for entry in failures
    )


async def test_park_mode_parks_after_max_attempts_and_goes_on(
    store: SqliteStore, route: Route
) -> None:
    def answer(received: Received) -> Reply:
        return ack(received, "AE" if received.control_id == "C2" else "AA")

    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address, on_failure="park", max_attempts=3)]
        await queue(store, routes, [adt(f"C{n}") for n in range(1, 5)])
        async with delivering(store, *routes):
            await downstream.wait_for(6)
            await eventually(lambda: _open_counts(store, (0, 1)))
    assert downstream.control_ids == ["C1", "C2", "C2", "C2", "C3", "C4"]
    (parked,) = await entries(store, EntryStatus.PARKED)
    assert (parked.control_id, parked.attempts, parked.last_error) == ("C2", 3, "AE")


async def _open_counts(store: SqliteStore, counts: tuple[int, int]) -> bool:
    found = await store.queue_status()
    return [(row.pending, row.parked) for row in found] == [counts]


async def test_reject_parks_at_once_even_in_blocking_mode(store: SqliteStore, route: Route) -> None:
    def answer(received: Received) -> Reply:
        if received.control_id == "C2":
            return ack(received, "AR", error_code="200")
        return ack(received)

    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address)]
        await queue(store, routes, [adt(f"C{n}") for n in range(1, 4)])
        with capture_logs() as logs:
            async with delivering(store, *routes):
                await downstream.wait_for(3)
                await eventually(lambda: _open_counts(store, (0, 1)))
    assert downstream.control_ids == ["C1", "C2", "C3"]
    (parked,) = [entry for entry in logs if entry["event"] == "message parked"]
    assert (parked["control_id"], parked["error"], parked["log_level"]) == (
        "C2",
        "AR (ERR 200)",
        "error",
    )


async def test_lanes_keep_each_patients_order_and_a_stuck_lane_holds_only_itself(
    store: SqliteStore, route: Route
) -> None:
    lanes = 4
    patients = [f"PAT{n}" for n in range(12)]
    stuck = patients[0]
    stuck_lane = lane_of(stuck, lanes)
    released = False

    def answer(received: Received) -> Reply:
        if received.control_id.startswith(f"{stuck}-") and not released:
            return ack(received, "AE")
        return ack(received)

    payloads = [
        adt(f"{patient}-{n:03d}", patient_id=patient) for n in range(30) for patient in patients
    ]
    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address, parallel_by="patient", connections=lanes)]
        await queue(store, routes, payloads)
        async with delivering(store, *routes):
            free = [p for p in patients if lane_of(p, lanes) != stuck_lane]
            await eventually(lambda: _all_of(downstream, free, 30))
            held = [p for p in patients if lane_of(p, lanes) == stuck_lane and p != stuck]
            assert not any(_of(downstream, p) for p in held)  # behind the stuck head
            assert set(_of(downstream, stuck)) == {f"{stuck}-000"}
            released = True
            await eventually(lambda: _nothing_pending(store))
    for patient in patients:
        delivered = list(dict.fromkeys(_of(downstream, patient)))  # retries collapsed
        assert delivered == [f"{patient}-{n:03d}" for n in range(30)]
    assert downstream.connections == lanes


def _of(downstream: Receiver, patient: str) -> list[str]:
    return [c for c in downstream.control_ids if c.startswith(f"{patient}-")]


async def _all_of(downstream: Receiver, patients: list[str], count: int) -> bool:
    received = defaultdict(set)
    for control_id in downstream.control_ids:
        received[control_id.split("-")[0]].add(control_id)
    return all(len(received[patient]) == count for patient in patients)


async def test_skipping_a_stuck_head_lets_the_queue_go_on(store: SqliteStore, route: Route) -> None:
    def answer(received: Received) -> Reply:
        return ack(received, "AE" if received.control_id == "C2" else "AA")

    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address)]
        await queue(store, routes, [adt(f"C{n}") for n in range(1, 5)])
        async with delivering(store, *routes):
            await downstream.wait_for(3)
            (head,) = [e for e in await entries(store, EntryStatus.PENDING) if e.control_id == "C2"]
            (result,) = await store.skip([head.entry_id], "downstream will never take it")
            assert result.done
            await eventually(lambda: _nothing_pending(store))
    assert downstream.control_ids[-2:] == ["C3", "C4"]
    assert (await store.entry_status(head.entry_id)) is EntryStatus.SKIPPED


async def test_resend_queues_a_copy_at_the_tail(store: SqliteStore, route: Route) -> None:
    rejected_once: set[str] = set()

    def answer(received: Received) -> Reply:
        if received.control_id == "C2" and "C2" not in rejected_once:
            rejected_once.add("C2")
            return ack(received, "AR")
        return ack(received)

    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address)]
        await queue(store, routes, [adt(f"C{n}") for n in range(1, 5)])
        async with delivering(store, *routes) as service:
            await downstream.wait_for(4)
            await eventually(lambda: _open_counts(store, (0, 1)))
            (parked,) = await entries(store, EntryStatus.PARKED)
            (delivered, *_) = await entries(store, EntryStatus.DELIVERED)  # newest first: C4
            first, again, delivered_again = await store.resend(
                [parked.entry_id, parked.entry_id, delivered.entry_id], "receiver fixed"
            )
            service.wake()
            await downstream.wait_for(6)
            await eventually(lambda: _nothing_pending(store))
    assert (
        first.done and not again.done and again.detail == f"already resent as {first.new_entry_id}"
    )
    assert downstream.control_ids == ["C1", "C2", "C3", "C4", "C2", "C4"]
    assert (await store.entry_status(parked.entry_id)) is EntryStatus.RESENT
    assert (await store.entry_status(delivered.entry_id)) is EntryStatus.DELIVERED
    assert delivered_again.done
    assert delivered.entry_id < first.new_entry_id < delivered_again.new_entry_id  # at the tail


async def lane_lease(store: SqliteStore, work_left_s: float) -> HeldLease:
    """This engine's lease on the lane, valid for `work_left_s` more seconds."""
    claim = await store.claim_lease("delivery adt/down", "this-engine", 60.0)
    assert claim.lease is not None
    return HeldLease(claim.lease, time.monotonic() + SAFETY_S + work_left_s)


async def test_a_send_running_past_the_lease_deadline_is_cut_and_nothing_follows(
    store: SqliteStore, route: Route
) -> None:
    # The lease's clock moves as the receiver sees the messages, not with the machine's
    # speed: C2's send starts with a second of the lease left, and the lease is over while
    # C2's ACK is awaited (the cut itself is the worker's real timeout of that second).
    clock = ManualClock()
    claim = await store.claim_lease("delivery adt/down", "this-engine", 60.0)
    assert claim.lease is not None
    held = HeldLease(claim.lease, clock.now + SAFETY_S + 60.0, clock)
    lease_over = asyncio.Event()

    def answer(received: Received) -> Reply:
        if received.control_id == "C1":
            clock.now = held.deadline - SAFETY_S - 1.0  # one second left for the next send
            return ack(received)
        clock.now = held.deadline  # C2: answered only after the lease is over
        return Reply(ack_bytes(received.control_id), held_until=lease_over)

    async with Receiver(answer) as downstream:
        routes = [route(mllp=downstream.address)]
        settings = routes[0].destinations[0]
        await queue(store, routes, [adt(f"C{n}") for n in range(1, 5)])
        lane = LaneWorker(
            store, "adt", settings, open_sender(RouteSettings("adt", "127.0.0.1:0"), settings)
        )
        with capture_logs() as logs:
            async with asyncio.timeout(HANG_GUARD_S):  # returns by itself once the lease is over
                await lane.run(held)
        lease_over.set()
    assert downstream.control_ids == ["C1", "C2"]
    pending = await entries(store, EntryStatus.PENDING)
    assert [entry.control_id for entry in pending] == ["C2", "C3", "C4"]
    assert pending[0].attempts == 0  # its outcome is unknown: nothing recorded
    assert any(entry["event"] == "send cut at the end of this engine's lease" for entry in logs)


async def test_a_lane_whose_lease_changed_hands_stops_at_its_first_refused_write(
    store: SqliteStore, route: Route
) -> None:
    async with Receiver(lambda received: ack(received, "AE")) as downstream:
        routes = [route(mllp=downstream.address)]
        settings = routes[0].destinations[0]
        await queue(store, routes, [adt(f"C{n}") for n in range(1, 4)])
        held = await lane_lease(store, 30.0)
        await store.claim_lease("delivery adt/down", "other-engine", 60.0, force=True)
        lane = LaneWorker(
            store, "adt", settings, open_sender(RouteSettings("adt", "127.0.0.1:0"), settings)
        )
        async with asyncio.timeout(10):
            await lane.run(held)
    assert downstream.control_ids == ["C1"]  # no retry, nothing after
    assert held.lost.is_set()
    (head, *_) = await entries(store, EntryStatus.PENDING)
    assert (head.control_id, head.attempts) == ("C1", 0)  # the refused failure left no trace
