"""A receiver's ACK that seems to be of another message: a control id outside ASCII echoed
in the receiver's own charset is recognised (python-hl7's server, behind an `ins-engine run`
process), and a receiver that really answers for another message makes that message parked
after `max_mismatched_acks` attempts, in the console and the metrics, instead of holding
its queue for ever."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.mllp.client import MllpClient
from engine.store.base import EntryStatus
from engine.testing.receiver import Received, Receiver, Reply, ack, ack_bytes
from tests.conftest import StartEngine
from tests.console.test_queue_actions import until
from tests.console.test_security import browser_like, http_table, log_in
from tests.delivery.harness import eventually
from tests.delivery.test_engine_process import send, write_config
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.metrics import value
from tests.support.python_hl7 import python_hl7_receiver

pytestmark = pytest.mark.system


async def test_python_hl7_echoing_a_non_ascii_control_id_gets_each_message_once(
    tmp_path: Path,
) -> None:
    expected = ["CAFÉ-1", "C2", "NOËL-3", "C4"]
    payloads = [
        adt(control_id, charset="UNICODE UTF-8", encoding="utf-8") for control_id in expected
    ]
    async with python_hl7_receiver(encoding="utf-8") as downstream:
        config = write_config(tmp_path, "127.0.0.1:0", f"127.0.0.1:{downstream.port}")
        async with EngineProcess(config) as engine:
            acked: list[bytes] = []
            await send(engine.address("adt"), payloads, acked)
            assert acked == payloads

            async def all_arrived() -> bool:
                return len(downstream.control_ids) >= len(expected)

            await eventually(all_arrived, timeout_s=20)
            assert await engine.terminate() == 0
    assert downstream.control_ids == expected  # each once, in order: no resend
    assert not engine.logged("delivery failed, will retry")


async def test_a_receiver_answering_for_another_message_has_it_parked_visibly(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    def answer(received: Received) -> Reply:
        return Reply(ack_bytes("OTHER")) if received.control_id == "STUCK" else ack(received)

    async with Receiver(answer) as receiver:
        route = (
            f'[[routes.destinations]]\nname = "lab"\nmllp = "{receiver.address}"\n'
            "max_mismatched_acks = 3\nbackoff_base_s = 0.05\nbackoff_cap_s = 0.2\n"
        )  # on_failure stays "block": the bound applies whatever it says
        engine = await start_engine(route, extra=http_table(tmp_path))
        assert engine.http is not None
        client = await MllpClient.connect(*engine.listeners["adt"].address)
        for control_id in ("STUCK", "NEXT1", "NEXT2"):
            assert b"MSA|AA|" in await client.exchange(adt(control_id), 5)
        await client.close()
        await until(engine, EntryStatus.PARKED, 1)
        await until(engine, EntryStatus.DELIVERED, 2)
        host, port = engine.http.address
        async with browser_like(f"http://{host}:{port}") as viewer:
            await log_in(viewer, "vera", "viewer-pass-1234")
            async with viewer.get("/queues") as page:
                queues = await page.text()
            async with viewer.get("/metrics") as page:
                metrics = await page.text()
    assert receiver.control_ids == ["STUCK"] * 3 + ["NEXT1", "NEXT2"]
    assert "mismatched ACK: MSA-2 is not the sent MSH-10 (3 mismatched ACKs: parked)" in queues
    labels = {"route": "adt", "destination": "lab"}
    assert value(metrics, "ins_engine_mismatched_acks_total", **labels) == 3
    assert value(metrics, "ins_engine_messages_parked_total", **labels) == 1
