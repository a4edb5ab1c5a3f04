"""Per-destination conditions and steps, in a running engine over real sockets: each
destination takes the types its `accept` names, in arrival order, with its own changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.mllp.client import MllpClient
from engine.testing.receiver import Receiver
from tests.conftest import StartEngine
from tests.support.config_errors import config_error
from tests.support.messages import adt
from tests.support.waiting import until

FEED = [adt("M1", "A28"), adt("M2", "A08"), adt("M3", "A31"), adt("M4", "A01"), adt("M5", "A28")]


def destinations(ehr: Receiver, lab: Receiver, archive: Path) -> str:
    return f"""
[[routes.destinations]]
name = "ehr"
mllp = "{ehr.address}"
accept = ["ADT^A28", "ADT^A31"]

[[routes.destinations]]
name = "lab"
mllp = "{lab.address}"
accept = ["ADT^A0*"]

[[routes.destinations.steps]]
kind = "set"
name = "receiving-application"
field = "MSH-5"
value = "LIS"

[[routes.destinations.steps]]
kind = "filter"
name = "no-updates"
action = "drop"
types = ["ADT^A08"]

[[routes.destinations]]
name = "archive"
file = "{archive}"
"""


async def test_each_destination_takes_its_types_in_order_with_its_own_steps(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    async with Receiver() as ehr, Receiver() as lab:
        engine = await start_engine(destinations(ehr, lab, archive))
        client = await MllpClient.connect(*engine.listeners["adt"].address)
        try:
            acks = [await client.exchange(message, 5) for message in FEED]
        finally:
            await client.close()
        await ehr.wait_for(3, timeout_s=10)
        await lab.wait_for(1, timeout_s=10)

    assert all(b"MSA|AA|" in ack for ack in acks)
    assert ehr.control_ids == ["M1", "M3", "M5"]
    assert [received.payload for received in ehr.received] == [FEED[0], FEED[2], FEED[4]]
    assert lab.control_ids == ["M4"]  # A08 dropped for the lab alone
    assert lab.received[0].payload == FEED[3].replace(b"|INS-ENGINE|", b"|LIS|")
    await until(lambda: len(list(archive.glob("*.hl7"))) == 5)
    assert [path.read_bytes() for path in sorted(archive.glob("*.hl7"))] == FEED
    assert engine.store is not None
    lab_a08 = await engine.store.decisions(2)
    assert [(d.destination, d.step, d.outcome) for d in lab_a08] == [
        ("lab", "receiving-application", "set"),
        ("lab", "no-updates", "dropped"),
    ]


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("accept = []", "routes[0].destinations[0].accept", "non-empty"),
        (
            '[[routes.destinations.steps]]\nkind = "filter"\ntypes = ["*"]\nbefore_ack = true',
            "routes[0].destinations[0].steps[0].before_ack",
            "a route step may be",
        ),
    ],
)
def test_destination_settings_errors(tmp_path: Path, text: str, key: str, expected: str) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        f'[[routes.destinations]]\nname = "d"\nfile = "out"\n{text}\n',
        encoding="utf-8",
    )
    error = config_error(path)
    assert (error.key, expected in error.expected) == (key, True)
