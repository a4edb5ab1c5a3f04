"""Table-driven: each `cases/*.toml` is a message in, the exact bytes out and its record.

The step runs against the real in-process INSi simulator (public test persons, or the
persons file a case names under `insi`). A case without `output` must come out byte for
byte as it went in. `{called_at}` in an output
stands for the INSi call time the record holds (ZFD-6, UTC). Every changed PID is checked
with hl7apy (HL7 v2.5, strict) unless the case gives a reason in `skip_hl7apy`.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_segment

from engine.enrich.settings import EnrichSettings
from engine.enrich.step import EnrichStep
from engine.hl7.charset import codec_for, declared_charset
from engine.ins.service import open_insi_service
from engine.ins.settings import InsiSettings
from tests.enrich.conftest import routed_from

CASES_DIR = Path(__file__).parent / "cases"
CASES: dict[str, dict[str, Any]] = {
    path.stem: tomllib.loads(path.read_text("utf-8")) for path in sorted(CASES_DIR.glob("*.toml"))
}


def encode(text: str, codec: str | None) -> bytes:
    """Case text (LF-separated) as HL7 bytes (CR-separated) in the charset MSH-18 declares."""
    hl7 = text.replace("\n", "\r")
    return hl7.encode(codec or codec_for(declared_charset(hl7.encode("latin-1", "replace"))))


def validate_pid(text: str, encoding_characters: str) -> None:
    """The enriched PID parses as HL7 v2.5 under hl7apy's strict validation."""
    pid = next(line for line in text.split("\r") if line.startswith("PID"))
    separators = {
        "FIELD": pid[3],
        "COMPONENT": encoding_characters[0],
        "REPETITION": encoding_characters[1],
        "ESCAPE": encoding_characters[2],
        "SUBCOMPONENT": encoding_characters[3],
    }
    segment = parse_segment(
        pid, version="2.5", encoding_chars=separators, validation_level=VALIDATION_LEVEL.STRICT
    )
    assert segment.validate()


@pytest.mark.parametrize("name", CASES)
async def test_case(name: str) -> None:
    case = CASES[name]
    raw = encode(case["input"], case.get("codec"))
    insi_settings = dict(case.get("insi", {}))
    if "simulator_persons" in insi_settings:  # a persons file beside the cases
        insi_settings["simulator_persons"] = str(CASES_DIR / insi_settings["simulator_persons"])
    insi = await open_insi_service(InsiSettings(**insi_settings))
    try:
        routed = routed_from(raw)
        settings = dict(case.get("settings", {}))
        guarded = settings.pop("strip_unqualified_ins", True)  # the route's ins_guard key
        step = EnrichStep(EnrichSettings(**settings), insi, strip_unqualified_ins=guarded)
        result = await step(routed)
    finally:
        await insi.aclose()

    record = result.payload
    assert {key: record[key] for key in case["record"]} == case["record"]
    if "output" not in case:
        assert not routed.changed
        assert routed.output() == raw
        return
    called_at = dt.datetime.fromisoformat(record["called_at"]) if record["called_at"] else None
    expected = case["output"]
    if called_at is not None:
        expected = expected.replace("{called_at}", called_at.strftime("%Y%m%d%H%M%S+0000"))
    assert routed.changed
    assert routed.output() == encode(expected, case.get("codec"))
    if "skip_hl7apy" not in case:  # the case says why
        validate_pid(routed.message.to_text(), routed.message.separators.encoding_characters)
