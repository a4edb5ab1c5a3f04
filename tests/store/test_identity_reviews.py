"""The identity work list and the vigilance team's "handled" marks, on both backends."""

from __future__ import annotations

from engine.enrich.reviews import mark_handled, work_list
from engine.store.backends import OpenStore
from engine.store.base import NewEntry, RoutingResult
from tests.store.conftest import enriched, incoming

NEEDING_A_PERSON = frozenset({"not_found", "several_found"})


async def test_the_work_list_lists_newest_first_and_keeps_the_marks(store: OpenStore) -> None:
    ids = [(await store.accept(incoming(f"W{n}"))).message_id for n in range(4)]
    outcomes = ["not_found", "added", "several_found", "not_found"]
    await store.route_messages(
        [
            RoutingResult(message_id, [NewEntry("down", None, None)], [enriched(outcome)])
            for message_id, outcome in zip(ids, outcomes, strict=True)
        ]
    )
    listed = await work_list(store, NEEDING_A_PERSON, None)
    assert [item.identity.message_id for item in listed] == [ids[3], ids[2], ids[0]]
    assert all(item.review is None for item in listed)

    assert await mark_handled(store, ids[2], "vera", "document checked")
    assert await mark_handled(store, ids[2], "vera", "INS attached by hand")  # marked again
    assert not await mark_handled(store, ids[1] + 1000, "vera", "no such outcome")

    to_handle = await work_list(store, NEEDING_A_PERSON, False)
    assert [item.identity.message_id for item in to_handle] == [ids[3], ids[0]]
    (handled,) = await work_list(store, NEEDING_A_PERSON, True)
    assert handled.identity.message_id == ids[2]
    assert handled.review is not None
    assert (handled.review.user, handled.review.comment) == ("vera", "INS attached by hand")
    older = await work_list(store, NEEDING_A_PERSON, None, before_id=ids[2], limit=1)
    assert [item.identity.message_id for item in older] == [ids[0]]
