"""The message search on both backends: each filter alone and together, prefixes, paging
that stays put while messages arrive."""

from __future__ import annotations

import dataclasses

import pytest

from engine.store import rules
from engine.store.backends import OpenStore
from engine.store.base import EntryStatus, MessageQuery, NewEntry, PatientKeys, RoutingResult
from tests.store.conftest import enriched, incoming


async def found(store: OpenStore, **filters: object) -> list[str]:
    return [s.control_id for s in await store.find_messages(MessageQuery(**filters))]  # type: ignore[arg-type]


@pytest.mark.parametrize("few", [rules.FEW, 1], ids=["from-their-rows", "from-the-newest"])
async def test_each_filter_narrows_the_search(
    store: OpenStore, few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever way an outcome or a delivery state is read (few rows: from them; many:
    the newest messages first), the same messages are found."""
    monkeypatch.setattr(rules, "FEW", few)
    rows = [
        ("CTL-100", "PAS", "adt", PatientKeys("P1", "DUPONT", "19800101"), 100.0),
        ("CTL-101", "PAS", "adt", PatientKeys("P2", "DURAND", "19900202"), 200.0),
        ("LAB-1", "LIS", "lab", PatientKeys("P1", "DUPONT", "19800101"), 300.0),
    ]
    ids = []
    for control_id, sender, route, patient, at in rows:
        message = incoming(control_id, sender=sender, route=route, received_at=at)
        message = dataclasses.replace(message, patient=patient)
        ids.append((await store.accept(message)).message_id)
    await store.route_messages(
        [
            RoutingResult(ids[0], [NewEntry("ehr", None, "P1")], [enriched("added")]),
            RoutingResult(ids[1], [NewEntry("ehr", None, "P2")], [enriched("insi_unavailable")]),
            RoutingResult(ids[2], [NewEntry("lims", None, "P1")], []),
        ]
    )
    (first, *_) = await store.pending_entries("adt", "ehr", 0, 10)
    await store.record_failure(first.entry_id, "AE", 0.0, park=True)

    assert await found(store) == ["LAB-1", "CTL-101", "CTL-100"]
    assert await found(store, control_id="CTL-10") == ["CTL-101", "CTL-100"]
    assert await found(store, control_id="CTL-1000") == []
    assert await found(store, patient_id="P1") == ["LAB-1", "CTL-100"]
    assert await found(store, sending_application="LIS") == ["LAB-1"]
    assert await found(store, sending_facility="HOSP") == ["LAB-1", "CTL-101", "CTL-100"]
    assert await found(store, message_type="ADT") == ["LAB-1", "CTL-101", "CTL-100"]
    assert await found(store, message_type="ADT^A28") == ["LAB-1", "CTL-101", "CTL-100"]
    assert await found(store, message_type="ADT^A2") == []
    assert await found(store, message_type="AD") == []
    assert await found(store, message_type="ORU") == []
    assert await found(store, route="lab") == ["LAB-1"]
    assert await found(store, destination="ehr") == ["CTL-101", "CTL-100"]
    assert await found(store, destination="ehr", status=EntryStatus.PENDING) == ["CTL-101"]
    assert await found(store, status=EntryStatus.PARKED) == ["CTL-100"]
    assert await found(store, destination="lims", status=EntryStatus.PARKED) == []
    assert await found(store, outcome="insi_unavailable") == ["CTL-101"]
    assert await found(store, since=150.0, until=300.0) == ["CTL-101"]
    assert await found(store, patient_name="du") == ["LAB-1", "CTL-101", "CTL-100"]
    assert await found(store, patient_name="Dùr") == ["CTL-101"]
    assert await found(store, patient_name="DUP", birth_date="19800101") == ["LAB-1", "CTL-100"]
    assert await found(store, route="adt", patient_id="P1", outcome="added") == ["CTL-100"]


async def test_a_page_stays_put_while_messages_arrive(store: OpenStore) -> None:
    for number in range(5):
        await store.accept(incoming(f"PG{number}"))
    first = await store.find_messages(MessageQuery(control_id="PG", limit=2))
    await store.accept(incoming("PG5"))  # arrives between two pages
    second = await store.find_messages(
        MessageQuery(control_id="PG", limit=2, before_id=first[-1].message_id)
    )
    assert [s.control_id for s in first + second] == ["PG4", "PG3", "PG2", "PG1"]
