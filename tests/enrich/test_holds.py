"""Decisions that survive a second pass: a patient whose record carried another person's INS
is held out of enrichment until the vigilance team marks the work-list row handled, on both
store backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.enrich.outcome import NEEDS_ACTION
from engine.enrich.reviews import mark_handled, work_list
from tests.enrich.engine_path import FEED, EnginePath

ROUTE = (
    FEED
    + """
[[routes.destinations]]
name = "all"
file = "out"
"""
)
PID = (
    "PID|1||IPP1^^^HOSP&1.2.250.1.999.1.1&ISO^PI{ins}||ADRUN^ZOE^ZOE^^^^L||19751231|F|||"
    "^^^^^FRA^BDL^^63220" + "|" * 21 + "VALI"
)
ZOE = "275126322074974"  # the INS INSi returns for these traits
OTHER = "~180032B02040123^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"


def a31(control_id: str, ins: str = "", sender: str = "PAS") -> bytes:
    msh = f"MSH|^~\\&|{sender}|HOSP|EHR|HOSP|20240101120000||ADT^A31|{control_id}|P|2.5"
    return f"{msh}\rEVN||20240101120000\r{PID.format(ins=ins)}\r".encode()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/engine.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def engine_path(store_url: str, tmp_path: Path) -> AsyncIterator[EnginePath]:
    path = await EnginePath.open(tmp_path, store_url, ROUTE)
    yield path
    await path.aclose()


DECISION = {
    "sqlite": "SELECT outcome, detail FROM step_decisions WHERE message_id = ? AND kind = ?",
    "postgresql": "SELECT outcome, detail FROM step_decisions WHERE message_id = %s AND kind = %s",
}


async def outcome(path: EnginePath, message_id: int) -> tuple[str, str]:
    rows = await path.store.fetch(DECISION[path.store.dialect], (message_id, "ins_enrich"))
    return rows[0]


async def test_another_persons_ins_holds_the_patient_until_the_row_is_handled(
    engine_path: EnginePath,
) -> None:
    conflict, first = await engine_path.run(a31("M1", OTHER))
    assert await outcome(engine_path, conflict) == ("incoherent", "ins_mismatch")
    assert b"180032B020401" not in first["all"] and ZOE.encode() not in first["all"]

    # Fed back in (a replay, the feed sent again): still no INS, the referral stands.
    again, second = await engine_path.run(first["all"])
    assert await outcome(engine_path, again) == ("held", "earlier_conflict")
    assert second["all"] == first["all"]
    # The patient's next messages too, whatever INS they carry; another sender's are not.
    held, third = await engine_path.run(
        a31("M2", f"~{ZOE}^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS")
    )
    assert await outcome(engine_path, held) == ("held", "earlier_conflict")
    assert ZOE.encode() not in third["all"]
    other, _ = await engine_path.run(a31("M3", sender="LAB"))
    assert await outcome(engine_path, other) == ("added", "")

    rows = await work_list(engine_path.store, NEEDS_ACTION, handled=False)
    assert [row.identity.message_id for row in rows] == [conflict]
    assert await mark_handled(engine_path.store, conflict, "vigilance", "INS corrected in the PAS")

    released, fifth = await engine_path.run(a31("M4"))
    assert await outcome(engine_path, released) == ("added", "")
    assert ZOE.encode() in fifth["all"]


async def test_a_patient_held_before_a_restart_stays_held_after_it(
    store_url: str, tmp_path: Path
) -> None:
    before = await EnginePath.open(tmp_path, store_url, ROUTE)
    try:
        conflict, _ = await before.run(a31("M1", OTHER))
        assert await outcome(before, conflict) == ("incoherent", "ins_mismatch")
    finally:
        await before.aclose()
    after = await EnginePath.open(tmp_path, store_url, ROUTE, first_number=1)
    try:
        held, output = await after.run(a31("M2"))
        assert await outcome(after, held) == ("held", "earlier_conflict")
        assert ZOE.encode() not in output["all"]
    finally:
        await after.aclose()
