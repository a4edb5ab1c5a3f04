"""Where two messages differ, field by field: what a route test prints when it fails.

Segments are compared in order; a segment with the same name on both sides is compared
field by field (`PID-3: expected "…", got "…"`, `OBX[2]-5` for the second OBX); a segment
missing, added or replaced is named. Values are shown (route tests hold test data), cut to
a readable length.
"""

from __future__ import annotations

from collections import Counter

from engine.hl7.message import Message, Segment

SHOWN = 60


def differences(expected: Message, actual: Message) -> list[str]:
    """Field-level differences, empty when both hold the same segments and fields."""
    found: list[str] = []
    seen: Counter[str] = Counter()
    for index in range(max(len(expected), len(actual))):
        want = expected.segment_at(index) if index < len(expected) else None
        got = actual.segment_at(index) if index < len(actual) else None
        name = (want or got).name  # type: ignore[union-attr]
        seen[name] += 1
        label = name if seen[name] == 1 else f"{name}[{seen[name]}]"
        if want is None or got is None:
            present = want or got
            assert present is not None
            verb = "missing" if got is None else "not expected"
            found.append(f"segment {index + 1} ({label}): {verb}: {_shown(present.text)}")
        elif want.name != got.name:
            found.append(
                f"segment {index + 1}: expected {_shown(want.text)}, got {_shown(got.text)}"
            )
        else:
            found.extend(_field_differences(label, want, got))
    return found


def _field_differences(label: str, want: Segment, got: Segment) -> list[str]:
    found = []
    for number in range(1, max(len(want.fields), len(got.fields))):
        expected, actual = _at(want.fields, number), _at(got.fields, number)
        if expected != actual:
            found.append(f"{label}-{number}: expected {_shown(expected)}, got {_shown(actual)}")
    return found


def _at(fields: list[str], number: int) -> str:
    return fields[number] if number < len(fields) else ""


def _shown(value: str) -> str:
    text = value if len(value) <= SHOWN else value[: SHOWN - 1] + "…"
    return f'"{text}"'
