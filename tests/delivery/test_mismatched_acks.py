"""A receiver's ACK that seems to be of another message: a control id outside ASCII echoed
in the receiver's own charset is recognised (python-hl7's server, behind an `ins-engine run`
process)."""

from __future__ import annotations

from pathlib import Path

from tests.delivery.harness import eventually
from tests.delivery.test_engine_process import send, write_config
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.python_hl7 import python_hl7_receiver


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
