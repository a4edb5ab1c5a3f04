"""The store contract's fixtures: every test taking `store` (or `store_url`, from the suite's
conftest) runs once on a SQLite file and once on a PostgreSQL database of its own, opened
with the step kinds' store extensions as the engine opens it."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator

import pytest

from engine.enrich.store import KIND
from engine.steps.registry import registry
from engine.store.backends import OpenStore, open_store
from engine.store.base import Incoming
from engine.store.decision import Decision


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[OpenStore]:
    opened = await open_store(store_url, extensions=registry().store_extensions())
    yield opened
    await opened.close()


_received_at = itertools.count(1_700_000_000)


def incoming(
    control_id: str,
    *,
    route: str = "adt",
    sender: str = "PAS",
    body: bytes = b"PID|1",
    ack: bytes | None = None,
    received_at: float | None = None,
) -> Incoming:
    """A received message as the intake hands it to the store."""
    raw = f"MSH|^~\\&|{sender}|HOSP|||20240101||ADT^A28|{control_id}|P|2.5\r".encode() + body
    return Incoming(
        route=route,
        peer="127.0.0.1:5000",
        received_at=float(next(_received_at)) if received_at is None else received_at,
        sending_application=sender,
        sending_facility="HOSP",
        control_id=control_id,
        message_type="ADT^A28",
        content_hash=hashlib.blake2b(body, digest_size=16).digest(),
        raw=raw,
        ack=ack if ack is not None else f"ACK of {control_id}".encode(),
    )


def enriched(outcome: str, **record: object) -> Decision:
    """The decision an `ins_enrich` step records, with its identity record as payload."""
    return Decision(
        KIND, KIND, outcome, str(record.get("detail", "")), payload={"outcome": outcome, **record}
    )
