"""`ins-engine run` as a subprocess, end to end: messages received over MLLP reach a
real receiver in arrival order through a downstream outage, a SIGKILL and a restart, and
the `queue` commands act on a running engine's store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from engine.app.runtime import process_count
from engine.mllp.client import MllpClient, MllpClientError
from engine.store.sqlite import SqliteStore
from engine.testing.receiver import Received, Receiver, Reply, ack
from tests.delivery.harness import arrived, assert_in_order_but_one_resend, eventually
from tests.support.cli import Ran, run_beside
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.ports import free_port

pytestmark = pytest.mark.system


def write_config(
    folder: Path, listen: str, downstream: str, engine_keys: str = "", tables: str = ""
) -> Path:
    """An engine with one route to `downstream`; `engine_keys` are more `[engine]` keys,
    `tables` more tables (e.g. `[http]`)."""
    config = folder / "engine.toml"
    config.write_text(
        f"""
[engine]
store = "sqlite:///{folder}/engine.db"
log_format = "json"
shutdown_grace_s = 5
{engine_keys}
{tables}
[[routes]]
name = "adt"
listen = "{listen}"
enrich = false

[[routes.destinations]]
name = "down"
mllp = "{downstream}"
backoff_base_s = 0.05
backoff_cap_s = 0.5
"""
    )
    return config


async def send(address: tuple[str, int], payloads: list[bytes], acked: list[bytes]) -> None:
    """Send in order on one connection, recording each message the engine accepted (AA);
    return quietly when the engine goes away."""
    try:
        client = await MllpClient.connect(*address, connect_timeout_s=5)
        for payload in payloads:
            answer = await client.exchange(payload, 10)
            assert b"MSA|AA|" in answer
            acked.append(payload)
        await client.close()
    except MllpClientError:
        return


async def queue_status(folder: Path) -> list[tuple[int, int, str | None]]:
    store = await SqliteStore.open(str(folder / "engine.db"))
    try:
        return [(s.pending, s.parked, s.last_error) for s in await store.queue_status()]
    finally:
        await store.close()


async def cli(config: Path, *args: str) -> Ran:
    """`ins-engine queue ARGS`, in this process beside the engine's (tests/support/cli.py)."""
    return await run_beside("queue", *args, "--config", str(config))


async def test_downstream_down_then_back_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    downstream_port = free_port()
    config = write_config(tmp_path, "127.0.0.1:0", f"127.0.0.1:{downstream_port}")
    payloads = [adt(f"O{n:03d}", patient_id=f"P{n % 5}") for n in range(300)]
    async with EngineProcess(config) as engine:
        acked: list[bytes] = []
        await send(engine.address("adt"), payloads, acked)
        assert acked == payloads
        await eventually(lambda: _stuck(tmp_path, 300))
        shown = await cli(config, "status")
        assert shown.status == 0
        assert "300" in shown.out and "connect to 127.0.0.1" in shown.out
        async with Receiver(port=downstream_port) as downstream:
            await downstream.wait_for(300)
            await eventually(lambda: _stuck(tmp_path, 0))
            assert await engine.terminate() == 0
    assert downstream.control_ids == [f"O{n:03d}" for n in range(300)]
    warnings = engine.logged("delivery failed, will retry")
    assert warnings and {"destination", "control_id", "attempts", "error", "delay_s"} <= set(
        warnings[0]
    )


async def _stuck(folder: Path, pending: int) -> bool:
    status = await queue_status(folder)
    if pending == 0:
        return not status
    return bool(status) and status[0][0] == pending and (status[0][2] or "").startswith("connect")


async def test_sigkill_mid_stream_then_restart_loses_no_acknowledged_message(
    tmp_path: Path,
) -> None:
    count = 1000
    expected = [f"K{n:04d}" for n in range(count)]
    payloads = [adt(control_id) for control_id in expected]
    acked: list[bytes] = []
    async with Receiver() as downstream:
        listen = f"127.0.0.1:{free_port()}"
        config = write_config(tmp_path, listen, downstream.address)
        async with EngineProcess(config) as engine:
            sending = asyncio.create_task(send(engine.address("adt"), payloads, acked))
            await downstream.wait_for(count // 4)
            engine.kill()
            await sending
            assert 0 < len(acked) < count
            await engine.start()
            await send(engine.address("adt"), payloads[len(acked) :], acked)
            await eventually(arrived(downstream, expected))
            await eventually(lambda: _stuck(tmp_path, 0))
    assert_in_order_but_one_resend(downstream.control_ids, expected)


async def test_queue_commands_on_a_running_engine(tmp_path: Path) -> None:
    rejected = {"Q2"}

    def answer(received: Received) -> Reply:
        return ack(received, "AR" if received.control_id in rejected else "AA")

    async with Receiver(answer) as downstream:
        config = write_config(tmp_path, "127.0.0.1:0", downstream.address)
        assert (await cli(config, "status")).status == 2  # no store yet: says so
        async with EngineProcess(config) as engine:
            await send(engine.address("adt"), [adt(f"Q{n}") for n in range(1, 4)], [])
            await downstream.wait_for(3)
            await eventually(lambda: _parked(tmp_path))
            listed = await cli(config, "list", "--parked", "--json")
            (parked,) = json.loads(listed.out)
            assert (parked["control_id"], parked["last_error"]) == ("Q2", "AR")
            assert "DARK" not in listed.out  # no patient data
            rejected.clear()
            resent = await cli(config, "resend", str(parked["entry_id"]), "--reason", "fixed")
            assert resent.status == 0 and "resent as" in resent.out
            await downstream.wait_for(4)
            again = await cli(config, "skip", str(parked["entry_id"]), "--reason", "twice")
            assert again.status == 1 and "already resent" in again.out
            await _shows_who_delivers(config, engine.logged("engine started")[-1]["engine"])
            assert await engine.terminate() == 0
    assert downstream.control_ids == ["Q1", "Q2", "Q3", "Q2"]


async def _shows_who_delivers(config: Path, engine_id: str) -> None:
    """`queue status` names the engine delivering each queue (its delivery process on a
    machine with more than one core); `report engines` lists every engine and every lease."""
    two = process_count(0) > 1
    deliverer = f"{engine_id}/delivery" if two else engine_id
    text = await cli(config, "status")
    assert "DELIVERED BY" in text.out and deliverer in text.out
    (row,) = json.loads((await cli(config, "status", "--json")).out)["queues"]
    assert row["delivered_by"] == deliverer and row["delivered_by_since"] > 0
    state = await report_engines(config)
    assert sorted(engine["engine_id"] for engine in state["engines"]) == sorted(
        {engine_id, deliverer}
    )
    assert {lease["name"]: lease["holder"] for lease in state["leases"]} == {
        "delivery adt/down": deliverer,
        "retention": deliverer,
        "routing": engine_id,
    }


async def _parked(folder: Path) -> bool:
    return [row[:2] for row in await queue_status(folder)] == [(0, 1)]


async def report_engines(config: Path) -> dict[str, Any]:
    """What `ins-engine report engines --json` says: the engines and their leases."""
    report = await run_beside("report", "engines", "--json", "--config", str(config))
    assert report.status == 0, report.err
    state: dict[str, Any] = json.loads(report.out)
    return state
