"""Where the writes a route test expects differ from those a FHIR destination makes.

Writes are compared in order: first their number, then each one's method and URL, then its
resource element by element, as the HL7 comparison names fields
(`PUT Patient?identifier=...: identifier[1].system: expected "...", got "..."`). Values are
shown (route tests hold test data), cut to a readable length.
"""

from __future__ import annotations

import json
from typing import Any

from engine.delivery.kind import Write
from engine.hl7.diff import SHOWN

ABSENT = object()  # an element one side has and the other has not


def differences(wanted: bytes, got: list[Write]) -> list[str]:
    """The differences between the expected writes (a JSON list) and those made."""
    try:
        expected = json.loads(wanted.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return [f"the expected writes cannot be read (not UTF-8 JSON: {error})"]
    if not isinstance(expected, list) or not all(isinstance(write, dict) for write in expected):
        return ['the expected writes are not a JSON list of {"method", "url", "resource"}']
    found = []
    if len(expected) != len(got):
        found.append(f"expected {len(expected)} writes, got {len(got)}")
    for number, (want, made) in enumerate(zip(expected, got, strict=False), start=1):
        label = _label(made)
        if _label(want) != label:
            found.append(f"write {number}: expected {_label(want)}, got {label}")
            continue
        resource = _elements("", want.get("resource", ABSENT), made.get("resource", ABSENT))
        found += [f"{label}: {difference}" for difference in resource]
    return found


def _label(write: Write) -> str:
    return f"{write.get('method')} {write.get('url')}"


def _elements(path: str, want: Any, got: Any) -> list[str]:
    """Differences under `path`, down to the first element that differs on each branch."""
    if isinstance(want, dict) and isinstance(got, dict):
        keys = [*want, *(key for key in got if key not in want)]
        return [
            difference
            for key in keys
            for difference in _elements(
                f"{path}.{key}" if path else key, want.get(key, ABSENT), got.get(key, ABSENT)
            )
        ]
    if isinstance(want, list) and isinstance(got, list):
        return [
            difference
            for index in range(max(len(want), len(got)))
            for difference in _elements(
                f"{path}[{index}]",
                want[index] if index < len(want) else ABSENT,
                got[index] if index < len(got) else ABSENT,
            )
        ]
    if type(want) is type(got) and want == got:
        return []
    return [f"{path or 'resource'}: expected {_shown(want)}, got {_shown(got)}"]


def _shown(value: Any) -> str:
    if value is ABSENT:
        return "nothing"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"
