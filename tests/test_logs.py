"""No patient data in log lines, whatever the call site passes."""

from __future__ import annotations

import io
import json

import structlog

from engine.base.logs import REDACTED, configure_logging
from engine.errors import EngineError
from engine.mllp.client import MllpClient
from tests.support.messages import adt

NAME, FIRST_NAME, MATRICULE, BIRTH_DATE = "ZYGOMATIQUE", "ULRICH", "297022A020778", "19970226"


def captured_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_values_of_unknown_keys_are_masked_and_numbers_kept() -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    structlog.get_logger("engine.test").info("lookup", name=NAME, calls=3, control_id="C1")
    (line,) = captured_lines(stream)
    assert line["name"] == REDACTED and line["calls"] == 3 and line["control_id"] == "C1"


def test_exception_text_is_kept_only_for_engine_errors() -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    log = structlog.get_logger("engine.test")
    try:
        raise ValueError(f"bad name {NAME}")
    except ValueError:
        log.exception("third-party failure")
    try:
        raise EngineError("store commit failed")
    except EngineError:
        log.exception("engine failure")
    foreign, own = captured_lines(stream)
    assert NAME not in json.dumps(foreign) and foreign["exception"].startswith("ValueError\n")
    assert own["exception"].startswith("EngineError: store commit failed")


async def test_a_message_through_the_engine_leaves_no_patient_data_in_logs(start_engine) -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    engine = await start_engine()
    message = adt(
        "PHI1",
        name=f"{NAME}^{FIRST_NAME}^{FIRST_NAME}^^^^L",
        birth_date=BIRTH_DATE,
        patient_id=MATRICULE,
    )
    client = await MllpClient.connect(*engine.listeners["adt"].address)
    assert b"MSA|AA|PHI1" in await client.exchange(message, 5)
    bad = message.replace(b"PHI1", b"PHI2").replace(b"8859/1", b"KLINGON")
    assert b"MSA|AE|PHI2" in await client.exchange(bad, 5)
    await client.close()
    await engine.stop()
    output = stream.getvalue()
    assert "PHI1" in output and "PHI2" in output  # the log did record the messages
    for secret in (NAME, FIRST_NAME, MATRICULE, BIRTH_DATE):
        assert secret not in output
