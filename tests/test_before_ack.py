"""Steps before the ACK, over real sockets: a refused message gets AE/AR with an ERR that
locates the field and is not stored; a dropped one gets AA, is stored, never delivered, and
`queue list --dropped` shows it; a good one goes on through the steps after the ACK."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from engine.app.runtime import Engine
from engine.mllp.client import MllpClient
from engine.testing.receiver import Receiver
from tests.conftest import StartEngine
from tests.support.engine_process import REPOSITORY

pytestmark = pytest.mark.system

STEPS = """
[[routes.steps]]
kind = "filter"
name = "senders"
before_ack = true
sending_application = ["PAS"]
on_stop = "AR"

[[routes.steps]]
kind = "filter"
name = "no-training"
before_ack = true
action = "drop"
field = "MSH-11"
values = ["T"]

[[routes.steps]]
kind = "validate"
before_ack = true
on_failure = "AE"

[[routes.steps]]
kind = "set"
name = "receiver"
field = "MSH-5"
value = "EHR"
"""


def a01(
    control_id: str, sender: str = "PAS", processing: str = "P", name: str = "DOE^JANE^^^^^L"
) -> bytes:
    return (
        f"MSH|^~\\&|{sender}|HOSP|ANY|HOSP|20240315041500||ADT^A01^ADT_A01|{control_id}"
        f"|{processing}|2.5\r"
        "EVN||20240315041500\r"
        f"PID|||800004^^^HOSP^PI||{name}||19360621|F\r"
        "PV1|1|I|CARDIO^101^1^HOSP\r"
    ).encode("latin-1")


def stored(engine: Engine) -> list[tuple[str, str]]:
    assert engine.store is not None
    with sqlite3.connect(engine.store.path) as db:
        return list(db.execute("SELECT control_id, status FROM messages ORDER BY id"))


async def test_before_the_ack_refused_dropped_and_accepted(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    async with Receiver() as downstream:
        engine = await start_engine(
            f'{STEPS}\n[[routes.destinations]]\nname = "ehr"\nmllp = "{downstream.address}"\n',
            enrich=None,
        )
        client = await MllpClient.connect(*engine.listeners["adt"].address)
        try:
            good = await client.exchange(a01("G1"), 5)
            foreign = await client.exchange(a01("F1", sender="LAB"), 5)
            training = await client.exchange(a01("T1", processing="T"), 5)
            invalid = await client.exchange(a01("I1", name=""), 5)
        finally:
            await client.close()
        await downstream.wait_for(1, timeout_s=10)

    assert b"MSA|AA|G1" in good
    assert b"MSA|AR|F1" in foreign and b"\rERR||MSH^1^3|207^" in foreign
    assert b"MSA|AA|T1" in training
    assert b"MSA|AE|I1" in invalid and b"\rERR||PID^1^5|101^" in invalid
    assert b"DOE" not in foreign + invalid  # the ERR locates the field, never quotes it
    assert stored(engine) == [("G1", "routed"), ("T1", "dropped")]
    assert downstream.control_ids == ["G1"]
    assert downstream.received[0].payload == a01("G1").replace(b"|ANY|", b"|EHR|")
    assert engine.store is not None
    decisions = await engine.store.decisions(1)
    assert [(d.step, d.outcome) for d in decisions] == [
        ("senders", "kept"),
        ("no-training", "kept"),
        ("validate", "valid"),
        ("receiver", "set"),
    ]

    listing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "engine",
        "queue",
        "list",
        "--dropped",
        "--config",
        str(engine.config.source),
        cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await listing.communicate()
    assert listing.returncode == 0
    lines = out.decode().splitlines()
    assert lines[0].split() == [
        "MESSAGE",
        "ROUTE",
        "CONTROL",
        "ID",
        "TYPE",
        "RECEIVED",
        "STEP",
        "DECISION",
    ]
    assert lines[1].split()[:4] == ["2", "adt", "T1", "ADT^A01"]
    assert lines[1].endswith("no-training  dropped 103 MSH^1^11")
