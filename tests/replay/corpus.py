"""hl7_samples/ as the tests read it: its messages, as replay sends them, and the expectations.

Shared by the corpus checks (`test_corpus.py`) and the end-to-end replay through a real
engine (`test_corpus_end_to_end.py`), so both read the same rule for each expectation key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engine.enrich.identity import read_identity, single_pid
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.message import Message, Segment, component
from engine.tools.replay.files import ReplayMessage, expand_paths, load_files
from tests.replay.conftest import SAMPLES

Expectation = dict[str, Any]

FILES, PROBLEMS = load_files(expand_paths([str(SAMPLES)]))
MESSAGES = [message for file in FILES for message in file.messages]
EXPECTATIONS: list[Expectation] = tomllib.loads((SAMPLES / "expectations.toml").read_text())[
    "message"
]
BY_KEY = {(Path(m.file).name, m.control_id): m for m in MESSAGES}


def parsed(message: ReplayMessage) -> Message:
    return Message.parse(decode(message.payload, CharsetPolicy()).text)


def sample_of(entry: Expectation) -> ReplayMessage:
    """The message an expectation is about, with the bytes replay sends for it."""
    return BY_KEY[(str(entry["file"]), str(entry["control_id"]))]


INS_OIDS = frozenset(f"1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11))


def ins_repetitions(pid: Segment) -> list[str]:
    """The repetitions of PID-2, PID-3 and PID-4 that name an INS (identifier type INS, or an
    INS OID in the assigning authority), as written."""
    c, s = pid.separators.component, pid.separators.subcomponent
    return [
        rep
        for field in (2, 3, 4)
        for rep in pid.repetitions(field)
        if component(rep, 5, c) == "INS" or INS_OIDS & set(component(rep, 4, c).split(s))
    ]


def expected_ins(entry: Expectation) -> list[str] | None:
    """The INS repetitions the output's PID-3 must hold, or None when not asserted.

    `ins` names the one expected; without it the output holds none, except for an entry
    that passes through unchanged: its output is its input, INS included (an A47 carries
    one), and the byte comparison says everything.
    """
    if "ins" in entry:
        return [str(entry["ins"])]
    if entry.get("pass_through_unchanged", False):
        return None
    return []


def patient_strings() -> set[str]:
    """Birth names and matricules of the corpus: text that must never reach a log or console."""
    found = {str(entry["ins"]).split("^")[0] for entry in EXPECTATIONS if "ins" in entry}
    for sample in MESSAGES:
        message = parsed(sample)
        pid_index = single_pid(message)
        assert pid_index is not None
        identity = read_identity(message, pid_index)
        found.add(identity.birth_name)
        found.update(ins.matricule for ins in identity.ins)
    return found - {""}
