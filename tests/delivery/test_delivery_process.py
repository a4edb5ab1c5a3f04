"""The engine with its delivery process (`[engine] processes = 2`), as a real subprocess:
deliveries in order and counted by the engine, a killed delivery process started again
without losing or reordering a message, and a delivery process that never outlives its engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from engine.testing.receiver import Receiver
from tests.delivery.harness import arrived, assert_in_order_but_one_resend, eventually
from tests.delivery.test_engine_process import report_engines, send
from tests.delivery.test_engine_process import write_config as engine_config
from tests.support.engine_process import REPOSITORY, EngineProcess
from tests.support.messages import adt
from tests.support.metrics import value

pytestmark = pytest.mark.system


def write_config(folder: Path, downstream: str) -> Path:
    """An engine with its delivery process and an HTTP listener."""
    return engine_config(
        folder, "127.0.0.1:0", downstream, "processes = 2", '[http]\nlisten = "127.0.0.1:0"\n'
    )


def delivery_pid(engine: EngineProcess) -> int:
    """The PID of the engine's current delivery process, from its latest "ready" line."""
    (*_, ready) = engine.logged("delivery process ready")
    return int(ready["pid"])


def parent_of(pid: int) -> int:
    """The PID of a process's parent, from /proc."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def http_get(engine: EngineProcess, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(engine.http_address() + path) as answer,
    ):
        return answer.status, await answer.text()


async def test_the_delivery_process_delivers_in_order_and_the_engine_counts_it(
    tmp_path: Path,
) -> None:
    expected = [f"D{n:03d}" for n in range(200)]
    async with Receiver() as downstream:
        config = write_config(tmp_path, downstream.address)
        async with EngineProcess(config) as engine:
            assert parent_of(delivery_pid(engine)) == engine.pid
            await send(engine.address("adt"), [adt(c, patient_id="P1") for c in expected], [])
            await downstream.wait_for(len(expected))

            async def counted() -> bool:
                _, text = await http_get(engine, "/metrics")
                delivered = value(
                    text,
                    "ins_engine_messages_delivered_total",
                    route="adt",
                    destination="down",
                )
                return delivered == len(expected)

            await eventually(counted)
            status, body = await http_get(engine, "/readyz")
            assert status == 200 and json.loads(body)["delivery"] == "running"
            engine_id = engine.logged("engine started")[-1]["engine"]
            leases = await _leases(config)
            assert leases["delivery adt/down"] == f"{engine_id}/delivery"
            assert leases["routing"] == engine_id
            assert await engine.terminate() == 0
    assert downstream.control_ids == expected


async def _leases(config: Path) -> dict[str, str]:
    return {lease["name"]: lease["holder"] for lease in (await report_engines(config))["leases"]}


async def test_a_killed_delivery_process_is_started_again_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    expected = [f"R{n:04d}" for n in range(600)]
    async with Receiver() as downstream:
        config = write_config(tmp_path, downstream.address)
        async with EngineProcess(config) as engine:
            first = delivery_pid(engine)
            acked: list[bytes] = []
            sending = asyncio.create_task(
                send(engine.address("adt"), [adt(c) for c in expected], acked)
            )
            await downstream.wait_for(100)
            os.kill(first, 9)

            async def not_ready() -> bool:
                status, body = await http_get(engine, "/readyz")
                return status == 503 and json.loads(body)["delivery"] == "down"

            await eventually(not_ready, timeout_s=5)  # until it runs again
            await sending
            assert len(acked) == len(expected)  # the engine kept receiving meanwhile

            await eventually(arrived(downstream, expected))
            assert engine.logged("delivery process exited, starting it again")
            assert delivery_pid(engine) != first and not alive(first)
            assert await engine.terminate() == 0
    assert_in_order_but_one_resend(downstream.control_ids, expected)


async def test_the_delivery_process_dies_with_its_engine(tmp_path: Path) -> None:
    async with Receiver() as downstream:
        config = write_config(tmp_path, downstream.address)
        async with EngineProcess(config) as engine:
            child = delivery_pid(engine)
            assert alive(child)
            engine.kill()

            async def gone() -> bool:
                return not alive(child)

            await eventually(gone, timeout_s=10)
            # The store is free again at once: a new engine starts and delivers.
            await engine.start()
            await send(engine.address("adt"), [adt("AFTER")], [])
            await downstream.wait_for(1)
            assert await engine.terminate() == 0
            assert not alive(delivery_pid(engine))


async def test_stop_signals_stop_the_engine_which_stops_its_delivery_process(
    tmp_path: Path,
) -> None:
    """A service manager or a terminal signals the whole group: the delivery process leaves
    the stop to the engine, which stops it after its listeners and router."""
    async with Receiver() as downstream:
        config = write_config(tmp_path, downstream.address)
        async with EngineProcess(config) as engine:
            child = delivery_pid(engine)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                os.kill(child, signum)
            await send(engine.address("adt"), [adt("STILL")], [])
            await downstream.wait_for(1)  # still delivering
            assert alive(child) and not engine.logged("delivery process exited, starting it again")
            assert await engine.terminate() == 0
            assert not alive(child)
    assert downstream.control_ids == ["STILL"]


def test_the_engine_runs_one_process_where_it_may_use_one_core() -> None:
    """`processes = 0` counts the cores the engine may use (a cpuset, `taskset`), not the
    machine's; a number set is kept."""
    script = (
        "import os; from engine.app.runtime import process_count; "
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "print(process_count(0), process_count(2), process_count(1))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True, check=True
    )
    assert shown.stdout.split() == ["1", "2", "1"]
