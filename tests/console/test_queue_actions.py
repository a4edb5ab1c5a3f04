"""The operator's actions from the console, over real HTTP against an engine in this process
delivering to a real MLLP receiver: resend every parked message of a destination, skip one
with a reason; each is audited, and a viewer may do neither."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from engine.app.runtime import Engine
from engine.mllp.client import MllpClient
from engine.store.base import EntryStatus
from engine.testing.receiver import Received, Receiver, Reply, ack
from tests.conftest import StartEngine
from tests.console.test_security import browser_like, csrf_of, http_table, log_in
from tests.support.messages import adt

pytestmark = pytest.mark.system


async def test_resend_every_parked_message_then_skip_one(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    accepting = False

    def lab(received: Received) -> Reply:
        return ack(received, "AA" if accepting else "AR", "" if accepting else "207")

    async with Receiver(lab) as receiver:
        route = (
            f'[[routes.destinations]]\nname = "lab"\nmllp = "{receiver.address}"\n'
            'on_failure = "park"\n'
        )
        engine = await start_engine(route, extra=http_table(tmp_path))
        assert engine.store is not None and engine.http is not None
        client = await MllpClient.connect(*engine.listeners["adt"].address)
        for number in range(3):
            await client.exchange(adt(f"PARK{number}"), 5)
        await client.close()
        await until(engine, EntryStatus.PARKED, 3)
        host, port = engine.http.address
        async with browser_like(f"http://{host}:{port}") as viewer:
            await log_in(viewer, "vera", "viewer-pass-1234")
            token = await csrf_of(viewer)
            async with viewer.post(
                "/queues/adt/lab/resend-parked", data={"csrf_token": token}, allow_redirects=False
            ) as answer:
                assert answer.status == 403
        accepting = True
        async with browser_like(f"http://{host}:{port}") as operator:
            await log_in(operator)
            token = await csrf_of(operator)
            async with operator.post(
                "/queues/adt/lab/resend-parked",
                data={"csrf_token": token, "reason": "lab back up"},
            ) as page:
                assert "3 parked message(s) of adt/lab resent" in await page.text()
            await receiver.wait_for(6)
            await until(engine, EntryStatus.DELIVERED, 3)
            rows = await engine.store.audit_entries(5)
            assert (rows[0].user, rows[0].action, rows[0].target, rows[0].detail) == (
                "otto",
                "resend_parked",
                "adt/lab",
                "lab back up (3 resent)",
            )
            await skip_needs_a_reason(operator)


async def skip_needs_a_reason(operator: aiohttp.ClientSession) -> None:
    token = await csrf_of(operator)
    async with operator.post(
        "/queues/entries/1/skip", data={"csrf_token": token, "reason": " "}, allow_redirects=False
    ) as answer:
        assert answer.status == 400


async def until(engine: Engine, status: EntryStatus, count: int, timeout_s: float = 15.0) -> None:
    """Until `count` entries of adt/lab are in `status` (the store offers no event)."""
    assert engine.store is not None
    async with asyncio.timeout(timeout_s):
        while len(await engine.store.list_entries(status, "adt", "lab", 100)) != count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_the_queues_page_shows_which_engine_delivers_each_queue_since_when(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    async with Receiver() as receiver:
        route = f'[[routes.destinations]]\nname = "lab"\nmllp = "{receiver.address}"\n'
        engine = await start_engine(route, extra=http_table(tmp_path))
        assert engine.http is not None and engine.leases is not None
        await engine.leases.acquire("delivery adt/lab")
        engine_id = engine.leases.engine.engine_id
        host, port = engine.http.address
        async with browser_like(f"http://{host}:{port}") as viewer:
            await log_in(viewer, "vera", "viewer-pass-1234")
            async with viewer.get("/queues") as page:
                text = await page.text()
    assert f"Delivered by {engine_id} since" in text
    for lease in ("delivery adt/lab", "routing", "retention"):
        assert f"<td>{lease}</td><td>{engine_id}</td>" in text
