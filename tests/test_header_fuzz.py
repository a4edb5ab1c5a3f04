"""Mutated headers through the intake, a few thousand from a fixed seed: every block gets an
answer an HL7 sender can read (or none, when it is an ACK or its MSH-15 says so), an unknown
MSH-18 always the unknown-charset NACK, and nothing raises or logs an error.
`bench/fuzz_mllp.py` sends such samples over MLLP to an `ins-engine run` process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from engine.base.logs import configure_logging
from engine.config.settings import RouteSettings
from engine.hl7.charset import declared_charset, is_known
from engine.hl7.message import Message
from engine.inbound.intake import Intake
from engine.store.sqlite import SqliteStore
from tests.conftest import fixed_acks
from tests.support.intake import receive
from tests.support.mutations import may_go_unanswered, samples

pytestmark = pytest.mark.system

SEED = 26
COUNT = 3000
ACK_CODES = {"AA", "AE", "AR", "CA", "CE", "CR"}


async def test_mutated_headers_are_all_answered(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    route = RouteSettings(name="adt", listen="127.0.0.1:0")
    store = await SqliteStore.open(str(tmp_path / "engine.db"))
    try:
        intake = Intake(route, store, fixed_acks())
        for sample in samples(COUNT, SEED):
            verdict = await receive(intake, sample.payload)
            label = declared_charset(sample.payload)
            where = f"sample {sample.number} ({sample.mutation})"
            if label and not is_known(label):
                assert verdict.reason.startswith("103 unsupported character set"), where
            if verdict.reply is None:
                assert may_go_unanswered(sample.payload), where
                continue
            msa = Message.parse(verdict.reply.decode("latin-1")).segment("MSA")
            assert msa is not None and msa.field(1) in ACK_CODES, where
    finally:
        await store.close()
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert not [line for line in logged if line["level"] in ("error", "critical")]
    assert not [line for line in logged if "exception" in line]  # a traceback's frames
