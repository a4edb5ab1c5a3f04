"""Malformed identities through enrichment and the INS guard, on the engine's own path.

The messages of `test_guard_property` are broken further: fields of MSH, PID and ZFD
replaced by generated text (delimiters, escape sequences, pieces of INS, statuses, control
characters, accents), ZFD segments of such text added, segments repeated, dropped or cut,
and the whole message written with other delimiters. Each is stored and routed as that test
routes its feeds (the enriching route on the INSi simulator, a destination whose step
writes an INS where none may be). Nothing may log an error or an exception (a step or guard
that failed, a message withheld), everything delivered must parse again, and no INS it
holds may break rules 1-5.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.base.logs import configure_logging
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.header import Header
from engine.hl7.message import Message
from tests.enrich.test_guard_property import SyncEnginePath, broken_rules, messages, plausible

PIECES = [
    *("|", "^", "~", "&", "\\", "\\F\\", "\\S\\", "\\X0D\\", '""', " ", "\x00", "\t", "é", "Œ"),
    *("INS", "INS-NIA", "NH", "PI", "L", "BDL", "ISO", "VALI", "FICT", "HOMA", "PROV", "Y"),
    *("ASIP-SANTE-INS-NIR", "ASIP-SANTE-INS-NIA", "1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9"),
    *("275126322074974", "2751263220749", "00", "19751231", "1975", "63220", "ADT", "A28"),
]
junk = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(st.characters(max_codepoint=255), max_size=4)),
    max_size=8,
).map(lambda parts: "".join(parts).replace("\r", "").replace("\n", ""))
# Fields worth breaking, by segment: MSH-1, MSH-2 and MSH-18 stay readable (the intake
# refuses a message without them; `test_message_property` and the header fuzz break those).
FIELDS = {"MSH": [3, 4, 9, 10, 11, 12, 15], "PID": list(range(1, 34)), "ZFD": list(range(1, 9))}
# Delimiters the generated text never holds, so that rewriting the message with them keeps
# its structure.
OTHER_DELIMITERS = "#!$%*+/:;<=>?@`"


@st.composite
def broken(draw: st.DrawFn, segments: list[str]) -> str:
    """`segments` (default delimiters) broken, as one CR-terminated message."""
    segments = list(segments)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(segments) - 1))
        name = segments[index][:3]
        action = draw(st.sampled_from(["field", "field", "field", "zfd", "repeat", "drop", "cut"]))
        if action == "zfd":  # a ZFD of generated fields after this segment
            segments.insert(index + 1, "|".join(["ZFD", *draw(st.lists(junk, max_size=8))]))
        elif action == "field" and name in FIELDS:
            number = draw(st.sampled_from(FIELDS[name]))
            fields = segments[index].split("|")
            fields += [""] * (number + 1 - len(fields) + (name == "MSH"))
            value = draw(junk)  # a field separator in MSH would move MSH-18 (a NACK)
            fields[number - (name == "MSH")] = value.replace("|", "") if name == "MSH" else value
            segments[index] = "|".join(fields)
        elif index and action == "repeat":
            segments.insert(index, segments[index])
        elif index and action == "drop":
            del segments[index]
        elif index and action == "cut":
            segments[index] = segments[index][: draw(st.integers(0, len(segments[index])))]
    text = "\r".join(segment for segment in segments if segment) + "\r"
    free = [char for char in OTHER_DELIMITERS if char not in text]
    if len(free) >= 5 and draw(st.booleans()):
        text = text.translate(str.maketrans("|^~\\&", "".join(draw(st.permutations(free))[:5])))
    return text


@pytest.fixture(scope="module")
def engine_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncEnginePath]:
    path = SyncEnginePath(tmp_path_factory.mktemp("enrich-fuzz"))
    yield path
    path.close()


MESSAGE = itertools.count()


@pytest.mark.timeout(600)  # a few hundred messages through a real store on a loaded machine
@settings(
    deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.one_of(plausible(), messages()).flatmap(broken))
@pytest.mark.system
def test_malformed_identities_leave_parsable_with_no_ins_breaking_the_invariant(
    engine_path: SyncEnginePath, text: str
) -> None:
    number = next(MESSAGE)  # unique control ids and patients: each message stands alone
    raw = (
        text.replace("{id}", f"Z{number}").replace("IPP", f"Z{number}P").encode("cp1252", "replace")
    )
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    outputs = engine_path.run(raw)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert not [line for line in logged if line["level"] in ("error", "critical")], logged
    assert not [line for line in logged if "exception" in line], logged
    for destination, output in outputs.items():
        decoded = decode(output, CharsetPolicy())
        Header.from_message(Message.parse(decoded.text))
        broken_rules_found = list(broken_rules(output.decode("latin-1")))
        assert not broken_rules_found, (destination, broken_rules_found, output)


def test_the_fuzzed_path_is_the_guarded_one(tmp_path: Path) -> None:
    """The route really enriches and guards: a carried INS on a provisional identity goes."""
    path = SyncEnginePath(tmp_path)
    try:
        raw = (
            "MSH#*~\\&#PAS#HOSP#DST#HOSP#20240101120000##ADT*A28#G1#P#2.5\r"
            "PID#1##IPP1***HOSP*PI~275126322074974***ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO*INS"
            "##ADRUN*ZOE*ZOE****L##19751231#F" + "#" * 24 + "PROV\r"
        ).encode("latin-1")
        outputs = path.run(raw)
    finally:
        path.close()
    assert b"275126322074974***" not in outputs["all"]
