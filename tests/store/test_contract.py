"""The `Store` contract: what every backend does, tested the same way on each (the
fixtures run every test on a SQLite file and on a PostgreSQL database)."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.enrich.store import StoredResultCache, identity_records
from engine.errors import LeaseLost, StoreError
from engine.store.backends import OpenStore, open_store
from engine.store.base import (
    AuditEntry,
    EngineState,
    EntryStatus,
    Lease,
    MessageQuery,
    MessageStatus,
    NewEntry,
    Pruned,
    RoutingResult,
)
from engine.store.lanes import lane_of
from tests.store.conftest import enriched, incoming
from tests.support.waiting import HANG_GUARD_S


async def accepted(store: OpenStore, *control_ids: str) -> list[int]:
    """Store messages one after the other (each waits for its commit, as ACKs do)."""
    return [(await store.accept(incoming(control_id))).message_id for control_id in control_ids]


async def routed(
    store: OpenStore, control_ids: list[str], destinations: tuple[str, ...] = ("down",)
) -> list[int]:
    """Store and route messages; returns their message ids."""
    ids = await accepted(store, *control_ids)
    await store.route_messages(
        [
            RoutingResult(
                message_id, [NewEntry(name, None, f"P{message_id}") for name in destinations]
            )
            for message_id in ids
        ]
    )
    return ids


async def pending_ids(store: OpenStore, destination: str = "down") -> list[int]:
    return [entry.entry_id for entry in await store.pending_entries("adt", destination, 0, 1000)]


# -- inbox ------------------------------------------------------------------------------


async def test_accept_stores_and_finds_duplicates_by_sender_key(store: OpenStore) -> None:
    first = await store.accept(incoming("C1", ack=b"original ACK"))
    assert not first.duplicate and first.ack == b"original ACK"
    again = await store.accept(incoming("C1", ack=b"a new ACK"))
    assert (again.message_id, again.duplicate, again.same_content) == (first.message_id, True, True)
    assert again.ack == b"original ACK"  # the sender gets the answer it got the first time
    other = await store.accept(incoming("C1", body=b"PID|2"))
    assert other.duplicate and not other.same_content
    # The key is route + MSH-3 + MSH-4 + MSH-10: another sender or route is another message.
    assert not (await store.accept(incoming("C1", sender="LAB"))).duplicate
    assert not (await store.accept(incoming("C1", route="other"))).duplicate


async def test_concurrent_accepts_are_grouped_and_all_committed(store: OpenStore) -> None:
    results = await asyncio.gather(*(store.accept(incoming(f"G{n}")) for n in range(200)))
    assert len({result.message_id for result in results}) == 200
    assert store.commits < 200  # one commit held several messages
    waiting = await store.received(0, 1000)
    assert [message.control_id for message in waiting] == [f"G{n}" for n in range(200)]


async def test_accept_many_stores_a_batch_in_order_with_its_duplicates(
    store: OpenStore,
) -> None:
    (first,) = await store.accept_many([incoming("B0", ack=b"first ACK")])
    batch = [incoming("B1"), incoming("B0"), incoming("B2"), incoming("B0", body=b"PID|2")]
    one, again, two, other = await store.accept_many(batch)
    assert not one.duplicate and not two.duplicate and one.message_id < two.message_id
    assert (again.message_id, again.duplicate, again.same_content) == (first.message_id, True, True)
    assert again.ack == b"first ACK"
    assert other.duplicate and not other.same_content
    assert await store.accept_many([]) == []
    waiting = await store.received(0, 10)
    assert [message.control_id for message in waiting] == ["B0", "B1", "B2"]


async def test_received_lists_unrouted_messages_in_arrival_order_page_by_page(
    store: OpenStore,
) -> None:
    ids = await accepted(store, "A", "B", "C", "D")
    first = await store.received(0, 2)
    assert [message.control_id for message in first] == ["A", "B"]
    assert first[0].raw.startswith(b"MSH|") and first[0].message_type == "ADT^A28"
    rest = await store.received(first[-1].message_id, 10)
    assert [message.message_id for message in rest] == ids[2:]
    await store.route_messages([RoutingResult(ids[0], [])])
    assert [message.control_id for message in await store.received(0, 10)] == ["B", "C", "D"]


async def test_routing_writes_entries_and_outcomes_all_or_none(store: OpenStore) -> None:
    ids = await accepted(store, "R1", "R2")
    await store.route_messages(
        [
            RoutingResult(
                ids[0],
                [NewEntry("down", b"CHANGED", "P1"), NewEntry("copy", None, None)],
                [enriched("found", traits="x")],
            ),
            RoutingResult(ids[1], [NewEntry("down", None, "P2")]),
        ]
    )
    (first, second) = await store.pending_entries("adt", "down", 0, 10)
    assert first.payload == b"CHANGED" and first.patient_key == "P1"
    assert second.payload.startswith(b"MSH|") and second.control_id == "R2"  # the bytes received
    assert [entry.message_id for entry in await store.pending_entries("adt", "copy", 0, 10)] == [
        ids[0]
    ]
    (record,) = await identity_records(store, 0, None)  # the step extension's own row
    assert (record.message_id, record.record) == (ids[0], {"outcome": "found", "traits": "x"})
    (decision,) = await store.decisions(ids[0])
    assert (decision.kind, decision.outcome, decision.payload) == ("ins_enrich", "found", None)
    assert await store.decisions(ids[1]) == []
    assert await store.received(0, 10) == []
    # A message routed once cannot be routed again (another router got there first): the
    # whole batch is refused, the new message in it too.
    (late,) = await accepted(store, "R3")
    with pytest.raises(StoreError):
        await store.route_messages(
            [RoutingResult(ids[1], [NewEntry("down", None, None)]), RoutingResult(late, [])]
        )
    assert [message.message_id for message in await store.received(0, 10)] == [late]
    assert len(await store.pending_entries("adt", "down", 0, 10)) == 2


# -- outbox -----------------------------------------------------------------------------


async def test_pending_entries_are_fifo_after_a_cursor_and_by_lane(store: OpenStore) -> None:
    await routed(store, [f"F{n}" for n in range(12)])
    entries = await store.pending_entries("adt", "down", 0, 5)
    assert [entry.control_id for entry in entries] == [f"F{n}" for n in range(5)]
    after = await store.pending_entries("adt", "down", entries[-1].entry_id, 100)
    assert [entry.control_id for entry in after] == [f"F{n}" for n in range(5, 12)]
    lanes = [await store.pending_entries("adt", "down", 0, 100, lane, 3) for lane in range(3)]
    assert sorted(entry.entry_id for lane in lanes for entry in lane) == await pending_ids(store)
    for lane, found in enumerate(lanes):
        assert all(lane_of(entry.patient_key, 3) == lane for entry in found)
        assert [entry.entry_id for entry in found] == sorted(entry.entry_id for entry in found)


async def test_entries_without_patient_key_use_lane_zero(store: OpenStore) -> None:
    (message_id,) = await accepted(store, "K0")
    await store.route_messages([RoutingResult(message_id, [NewEntry("down", None, None)])])
    assert len(await store.pending_entries("adt", "down", 0, 10, 0, 4)) == 1
    for lane in (1, 2, 3):
        assert await store.pending_entries("adt", "down", 0, 10, lane, 4) == []


async def test_delivery_marks_failures_and_parking(store: OpenStore) -> None:
    await routed(store, ["D1", "D2", "D3"])
    one, two, three = await pending_ids(store)
    await store.mark_delivered(one, "AA")
    retry_at = time.time() + 60
    await store.record_failure(two, "AE (ERR 207)", retry_at, park=False)
    await store.record_failure(three, "AR", 0.0, park=True)
    assert await store.entry_status(one) is EntryStatus.DELIVERED
    assert await store.entry_status(two) is EntryStatus.PENDING
    assert await store.entry_status(three) is EntryStatus.PARKED
    assert await store.entry_status(999_999) is None
    (head,) = await store.pending_entries("adt", "down", 0, 10)
    assert (head.attempts, head.last_error) == (1, "AE (ERR 207)")
    assert head.next_attempt_at == retry_at  # kept as given, not compared with the clock
    (status,) = await store.queue_status()
    assert (status.pending, status.parked, status.head_attempts) == (1, 1, 1)
    assert status.last_error in ("AE (ERR 207)", "AR")
    assert status.oldest_pending_at == head.received_at


async def test_delivery_marks_in_a_batch_each_get_their_answer(store: OpenStore) -> None:
    await routed(store, ["M1", "M2", "M3"])
    one, two, three = await pending_ids(store)
    await store.skip([two], "not wanted downstream")
    marked = await store.mark_delivered_many([(one, "AA"), (two, "AA"), (three, "CA")])
    assert marked == [True, False, True]  # the skip stands
    assert [await store.entry_status(entry) for entry in (one, two, three)] == [
        EntryStatus.DELIVERED,
        EntryStatus.SKIPPED,
        EntryStatus.DELIVERED,
    ]
    assert await store.mark_delivered_many([]) == []


async def test_an_operator_skip_wins_over_a_later_failure(store: OpenStore) -> None:
    await routed(store, ["S1"])
    (entry_id,) = await pending_ids(store)
    (result,) = await store.skip([entry_id], "not wanted downstream")
    assert result.done and result.detail == "skipped"
    await store.record_failure(entry_id, "AE", 0.0, park=True)
    assert await store.entry_status(entry_id) is EntryStatus.SKIPPED
    (again,) = await store.skip([entry_id], "twice")
    assert (again.done, again.detail) == (False, "already skipped")
    (missing,) = await store.skip([424242], "typo")
    assert (missing.done, missing.detail) == (False, "no such entry")


async def test_resend_queues_a_copy_at_the_tail(store: OpenStore) -> None:
    await routed(store, ["Q1", "Q2", "Q3"])
    one, two, three = await pending_ids(store)
    await store.mark_delivered(one, "AA")
    await store.record_failure(two, "AR", 0.0, park=True)
    results = await store.resend([one, two, three], "receiver restored")
    assert [result.done for result in results] == [True, True, False]
    assert results[2].detail == "still pending: nothing to do"
    copies = [result.new_entry_id for result in results[:2]]
    assert await pending_ids(store) == [three, *copies]  # at the tail, behind the head
    assert await store.entry_status(one) is EntryStatus.DELIVERED  # history stays true
    assert await store.entry_status(two) is EntryStatus.RESENT
    (twice,) = await store.resend([two], "again")
    assert (twice.done, twice.detail) == (False, f"already resent as {copies[1]}")
    resent = await store.list_entries(EntryStatus.RESENT, None, None, 10)
    assert [entry.entry_id for entry in resent] == [two]


async def test_reprocess_stores_a_linked_copy_for_the_router(store: OpenStore) -> None:
    first, second = await routed(store, ["R1", "R2"], destinations=("down", "copy"))
    unrouted = (await accepted(store, "R3"))[0]
    results = await store.reprocess([first, second, unrouted, 424242], None, "ops", "INSi back")
    assert [result.done for result in results] == [True, True, False, False]
    assert results[2].detail == "not routed yet: its route's current steps will run on it"
    assert results[3].detail == "no such message (it may have been pruned)"
    copy = results[0].copy_id
    assert copy is not None and copy > unrouted  # a new message, after every earlier one
    assert results[0].control_id == "R1-R1"
    waiting = {message.message_id: message for message in await store.received(0, 10)}
    assert set(waiting) == {unrouted, copy, results[1].copy_id}
    # MSH-10 alone changed, and the copy goes where its original went unless told otherwise.
    assert waiting[copy].raw == (await store.message_detail(first)).raw.replace(  # type: ignore[union-attr]
        b"|R1|", b"|R1-R1|"
    )
    assert waiting[copy].control_id == "R1-R1" and waiting[copy].only_to == {"down", "copy"}
    original = await store.message_detail(first)
    reprocessed = await store.message_detail(copy)
    assert original is not None and reprocessed is not None
    assert original.reprocessed_as == (copy,) and reprocessed.reprocess_of == first
    assert reprocessed.peer == "reprocess" and reprocessed.summary.ack == b""
    # A copy of a copy is a copy of the original, numbered after the others.
    (again,) = await store.reprocess([copy], ["down"], "ops", "once more")
    assert (again.message_id, again.control_id) == (first, "R1-R2")
    assert (await store.received(copy, 10))[-1].only_to == {"down"}
    (audit, *_) = await store.audit_entries(10)
    assert (audit.user, audit.action, audit.detail) == ("ops", "reprocess", "once more")
    assert audit.target == f"message {first} (R1) as {again.copy_id}"


async def test_list_entries_open_oldest_first_finished_newest_first(store: OpenStore) -> None:
    await routed(store, ["L1", "L2", "L3"], destinations=("down", "copy"))
    ids = await pending_ids(store)
    for entry_id in ids[:2]:
        await store.mark_delivered(entry_id, "AA")
    pending = await store.list_entries(EntryStatus.PENDING, "adt", None, 10)
    assert [(entry.destination, entry.control_id) for entry in pending] == [
        ("copy", "L1"),
        ("copy", "L2"),
        ("down", "L3"),
        ("copy", "L3"),
    ]  # fmt: skip (in routing order: each message's entries together)
    copy_only = await store.list_entries(EntryStatus.PENDING, None, "copy", 2)
    assert [entry.control_id for entry in copy_only] == ["L1", "L2"]
    delivered = await store.list_entries(EntryStatus.DELIVERED, None, None, 10)
    assert [entry.entry_id for entry in delivered] == [ids[1], ids[0]]
    assert delivered[0].attempts == 1 and delivered[0].updated_at > 0
    assert await store.list_entries(EntryStatus.PENDING, "other", None, 10) == []


# -- retention, outcomes, cache ---------------------------------------------------------


async def test_prune_removes_finished_and_old_keeps_open_and_newest(store: OpenStore) -> None:
    ids = await accepted(store, *(f"P{n}" for n in range(1, 6)))
    for message_id in ids:
        await store.route_messages(
            [RoutingResult(message_id, [NewEntry("down", None, "P1")], [enriched("kept")])]
        )
    entries = await pending_ids(store)
    for entry_id in (entries[0], entries[1], entries[4]):
        await store.mark_delivered(entry_id, "AA")
    await store.skip([entries[2]], "not wanted")
    await store.record_failure(entries[3], "AR", 0.0, park=True)
    assert await store.prune(time.time() - 3600, 1000) == Pruned(0, 0)
    assert await store.prune(time.time() + 1, 2) == Pruned(2, 2)
    assert await store.prune(time.time() + 1, 1000) == Pruned(1, 1)
    # The parked entry stays, and so does the newest row of each table.
    assert [
        entry.entry_id for entry in await store.list_entries(EntryStatus.PARKED, None, None, 9)
    ] == [entries[3]]
    delivered = await store.list_entries(EntryStatus.DELIVERED, None, None, 9)
    assert [entry.entry_id for entry in delivered] == [entries[4]]
    assert [record.message_id for record in await identity_records(store, 0, None)] == ids[3:]
    assert await store.decisions(ids[0]) == []  # gone with their message


async def test_identity_records_filter_by_outcome_and_time_and_page(store: OpenStore) -> None:
    outcomes = ["found", "not_found", "found", "several"]
    ids = []
    for number, outcome in enumerate(outcomes):
        result = await store.accept(incoming(f"I{number}", received_at=1000.0 + number))
        ids.append(result.message_id)
        decision = enriched(outcome, birth_name="DARK")
        await store.route_messages([RoutingResult(result.message_id, [], [decision], True)])
    wanted = await identity_records(store, 0, frozenset({"not_found", "several"}))
    assert [record.record["outcome"] for record in wanted] == ["not_found", "several"]
    assert wanted[0].control_id == "I1" and wanted[0].route == "adt"
    recent = await identity_records(store, 1002.0, None)
    assert [record.message_id for record in recent] == ids[2:]
    page = await identity_records(store, 0, None, after_id=ids[0], limit=2)
    assert [record.message_id for record in page] == ids[1:3]


async def test_insi_cache_expires_and_replaces(store: OpenStore) -> None:
    now = time.time()
    cache = StoredResultCache(store)
    await cache.save("key", b"first", now + 60)
    await cache.save("key", b"second", now + 60)
    await cache.save("old", b"stale", now - 1)
    assert await cache.load("key") == b"second"
    assert await cache.load("old") is None
    assert await cache.load("absent") is None
    assert (await store.prune(now - 10, 100)).extension_rows == 1


# -- persistence ------------------------------------------------------------------------


async def test_what_was_committed_is_there_after_reopening(store_url: str) -> None:
    first = await open_store(store_url)
    ids = await routed(first, ["O1", "O2"])
    (waiting,) = await accepted(first, "O3")
    await first.close()
    with pytest.raises(StoreError):
        await first.accept(incoming("late"))
    again = await open_store(store_url)
    try:
        assert [
            entry.message_id for entry in await again.pending_entries("adt", "down", 0, 9)
        ] == ids
        assert [message.message_id for message in await again.received(0, 9)] == [waiting]
        assert (await again.accept(incoming("O1"))).duplicate
    finally:
        await again.close()


# -- leases and engines -----------------------------------------------------------------


async def test_a_lease_is_held_renewed_refused_to_others_and_released(store: OpenStore) -> None:
    claim = await store.claim_lease("delivery adt/down", "engine-a", 30.0)
    assert claim.lease is not None and claim.lease.token >= 1
    renewed = await store.claim_lease("delivery adt/down", "engine-a", 30.0)
    assert renewed.lease == claim.lease  # same token and since: still the same tenure
    busy = await store.claim_lease("delivery adt/down", "engine-b", 30.0)
    assert busy.lease is None and busy.holder == "engine-a"
    assert 25.0 < busy.remaining_s <= 30.0
    (state,) = await store.leases()
    assert (state.name, state.holder, state.since) == (
        "delivery adt/down",
        "engine-a",
        claim.lease.since,
    )
    assert state.expires_at - state.renewed_at == pytest.approx(30.0)
    await store.release_lease(claim.lease)
    taken = await store.claim_lease("delivery adt/down", "engine-b", 30.0)
    assert taken.lease is not None and taken.lease.holder == "engine-b"
    assert taken.lease.token > claim.lease.token  # tokens only grow, released or not


async def lapsing(store: OpenStore, lease: Lease) -> None:
    """Its holder renews `lease` one last time, for a moment, and then never again (it died):
    the lease expires on the store's clock however late the test is."""
    assert (await store.claim_lease(lease.name, lease.holder, 0.2)).lease == lease


async def claimed_once_expired(store: OpenStore, name: str, holder: str) -> Lease:
    """`holder`'s claim of lease `name` (for a minute), made again until the store grants
    it: once the lease held by another has expired by the store's own answer. The bound is
    a hang guard, not a measure of the lease's lifetime."""
    async with asyncio.timeout(HANG_GUARD_S):
        claim = await store.claim_lease(name, holder, 60.0)
        while claim.lease is None:
            await asyncio.sleep(0.02)
            claim = await store.claim_lease(name, holder, 60.0)
    return claim.lease


async def test_an_expired_lease_is_taken_over_with_a_new_token(store: OpenStore) -> None:
    old = (await store.claim_lease("router", "engine-a", 60.0)).lease
    assert old is not None
    assert (await store.claim_lease("router", "engine-b", 60.0)).lease is None  # held
    await lapsing(store, old)
    new = await claimed_once_expired(store, "router", "engine-b")
    assert new.token > old.token and new.since > old.since
    # The old holder can neither renew nor release what it lost.
    assert (await store.claim_lease("router", "engine-a", 60.0)).lease is None
    await store.release_lease(old)
    (state,) = await store.leases()
    assert state.holder == "engine-b"
    refused = await store.claim_lease("router", "engine-c", 60.0)
    assert (refused.lease, refused.holder) == (None, "engine-b")  # still held: not released


async def test_force_takes_a_lease_whoever_holds_it(store: OpenStore) -> None:
    old = (await store.claim_lease("router", "dead-engine", 60.0)).lease
    forced = (await store.claim_lease("router", "engine-b", 10.0, force=True)).lease
    assert old is not None and forced is not None and forced.token > old.token


async def test_marks_fenced_by_a_lost_lease_are_refused(store: OpenStore) -> None:
    await routed(store, ["W1", "W2"])
    one, two = await pending_ids(store)
    mine = (await store.claim_lease("delivery adt/down", "engine-a", 60.0)).lease
    assert mine is not None
    await store.mark_delivered(one, "AA", fence=mine)  # held: recorded
    await lapsing(store, mine)
    theirs = await claimed_once_expired(store, "delivery adt/down", "engine-b")
    with pytest.raises(LeaseLost):
        await store.mark_delivered(two, "AA", fence=mine)
    with pytest.raises(LeaseLost):
        await store.mark_delivered_many([(two, "AA")], fence=mine)
    with pytest.raises(LeaseLost):
        await store.record_failure(two, "AE", 0.0, park=True, fence=mine)
    assert await store.entry_status(one) is EntryStatus.DELIVERED
    assert await store.entry_status(two) is EntryStatus.PENDING  # untouched
    await store.record_failure(two, "AE", 0.0, park=False, fence=theirs)
    assert (await store.pending_entries("adt", "down", 0, 9))[0].attempts == 1


async def test_engines_are_recorded_with_their_last_sign_of_life(store: OpenStore) -> None:
    a = EngineState("host-1/100", "host-1", 100, 1000.0, 0.0)
    b = EngineState("host-2/200", "host-2", 200, 2000.0, 0.0)
    before = time.time()
    await store.engine_seen(b)
    await store.engine_seen(a)
    found = await store.engines()
    assert [engine.engine_id for engine in found] == ["host-1/100", "host-2/200"]
    assert all(engine.seen_at >= before - 5 for engine in found)
    await store.engine_stopped("host-1/100")
    assert [engine.pid for engine in await store.engines()] == [200]


# -- what operators see: traces, bulk actions, state ------------------------------------


async def test_a_delivery_recorded_after_a_skip_leaves_the_skip_and_says_so(
    store: OpenStore,
) -> None:
    await routed(store, ["K1"])
    (entry_id,) = await pending_ids(store)
    await store.skip([entry_id], "wrong patient")  # while the send was in flight
    assert await store.mark_delivered(entry_id, "AA") is False
    assert await store.entry_status(entry_id) is EntryStatus.SKIPPED
    (trace,) = await store.trace("K1", None)
    kinds = [event.kind for event in trace.entries[0].events]
    assert kinds == ["skip", "delivered after skip"]
    assert "ACK AA" in trace.entries[0].events[1].detail


async def test_a_trace_follows_one_message_to_every_destination(store: OpenStore) -> None:
    message = await store.accept(incoming("T1", received_at=5000.0))
    await store.accept(incoming("T1", route="other"))  # the same MSH-10 elsewhere
    await store.route_messages(
        [
            RoutingResult(
                message.message_id,
                [NewEntry("down", None, "P1"), NewEntry("copy", None, "P1")],
                [enriched("found", detail="one answer", birth_name="DARK")],
            )
        ]
    )
    down, copy = await store.list_entries(EntryStatus.PENDING, None, None, 10)
    await store.record_failure(down.entry_id, "AE (ERR 207)", 0.0, park=False)
    assert await store.mark_delivered(down.entry_id, "AA") is True
    await store.skip([copy.entry_id], "not for the lab")
    traces = await store.trace("T1", None)
    assert [trace.route for trace in traces] == ["adt", "other"]
    (trace,) = await store.trace("T1", "adt")
    assert (trace.message_id, trace.received_at, trace.status) == (
        message.message_id, 5000.0, MessageStatus.ROUTED,
    )  # fmt: skip
    (decision,) = trace.decisions
    assert (decision.step, decision.outcome, decision.detail) == (
        "ins_enrich",
        "found",
        "one answer",
    )
    assert trace.ack == b"ACK of T1" and trace.sending_application == "PAS"
    first, second = trace.entries
    assert (first.destination, first.status, first.attempts) == ("down", EntryStatus.DELIVERED, 2)
    assert [(event.kind, event.detail) for event in first.events] == [
        ("failed", "AE (ERR 207)"),
        ("delivered", "AA"),
    ]
    assert [(event.kind, event.detail) for event in second.events] == [("skip", "not for the lab")]
    assert await store.trace("nothing", None) == []


async def test_bulk_ids_unrouted_counts_and_published_state(store: OpenStore) -> None:
    await routed(store, ["B1", "B2", "B3"])
    one, _, three = await pending_ids(store)
    for entry_id in (three, one):
        await store.record_failure(entry_id, "AR", 0.0, park=True)
    assert await store.entry_ids(EntryStatus.PARKED, "adt", "down") == [one, three]
    assert await store.entry_ids(EntryStatus.PARKED, "adt", "elsewhere") == []
    await accepted(store, "U1", "U2")
    await store.accept(incoming("U3", route="other"))
    assert await store.unrouted() == {"adt": 2, "other": 1}
    await store.put_state("insi", '{"breaker": "closed"}')
    await store.put_state("insi", '{"breaker": "open"}')
    (state,) = await store.states()
    assert (state.name, state.payload) == ("insi", '{"breaker": "open"}')
    assert state.updated_at > 0


# -- what the console and the metrics read and keep ---------------------------------------


async def test_messages_are_found_and_detailed_for_the_console(store: OpenStore) -> None:
    one = (await store.accept(incoming("F1", received_at=100.0))).message_id
    two = (await store.accept(incoming("F2", received_at=200.0))).message_id
    await store.route_messages(
        [
            RoutingResult(one, [NewEntry("down", b"OUT", "P1")], [enriched("found")]),
            RoutingResult(two, [NewEntry("down", None, "P2")], [enriched("not_found")]),
        ]
    )
    first, second = await pending_ids(store)
    await store.record_failure(first, "AE", 0.0, park=True)
    newest = await store.find_messages(MessageQuery())
    assert [summary.control_id for summary in newest] == ["F2", "F1"]
    assert newest[1].deliveries == (("down", EntryStatus.PARKED),)
    assert newest[1].outcomes == ("found",) and newest[1].ack == b"ACK of F1"
    assert [s.control_id for s in await store.find_messages(MessageQuery(outcome="found"))] == [
        "F1"
    ]
    parked = await store.find_messages(MessageQuery(status=EntryStatus.PARKED))
    assert [summary.message_id for summary in parked] == [one]
    assert [s.message_id for s in await store.find_messages(MessageQuery(since=150.0))] == [two]
    page = await store.find_messages(MessageQuery(before_id=two, limit=1))
    assert [summary.message_id for summary in page] == [one]
    detail = await store.message_detail(one)
    assert detail is not None and detail.raw.startswith(b"MSH|") and detail.peer == "127.0.0.1:5000"
    (entry,) = detail.entries
    assert (entry.entry_id, entry.payload, entry.status) == (first, b"OUT", EntryStatus.PARKED)
    assert [event.kind for event in detail.traces[0].events] == ["parked"]
    assert await store.message_detail(424242) is None
    assert second > first


async def test_audit_counters_and_readiness(store: OpenStore) -> None:
    for number in range(3):
        await store.record_audit(AuditEntry(1000.0 + number, "vera", "viewed", f"message {number}"))
    newest = await store.audit_entries(2)
    assert [(entry.user, entry.target) for entry in newest] == [
        ("vera", "message 2"), ("vera", "message 1"),
    ]  # fmt: skip
    older = await store.audit_entries(10, before_id=newest[-1].audit_id)
    assert [entry.target for entry in older] == ["message 0"]
    await store.save_counters([("received", '{"route": "adt"}', 5.0)])
    await store.save_counters([("received", '{"route": "adt"}', 7.0), ("parked", "{}", 1.0)])
    assert sorted(await store.load_counters()) == [
        ("parked", "{}", 1.0), ("received", '{"route": "adt"}', 7.0),
    ]  # fmt: skip
    await store.check_writable()
    await store.check_writable()  # rewrites its one row
