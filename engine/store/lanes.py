"""Which lane of a `parallel_by = "patient"` destination carries a patient's messages.

A lane is a strict FIFO with its own connection; every message of one patient (PID-3 local
identifier) falls in the same lane, so per-patient order holds while lanes run side by side.
Messages without a patient key all go to lane 0. The hash is CRC-32, not Python's `hash`,
so the store can compute the same lane in SQL and every process agrees on it.
"""

from __future__ import annotations

import zlib


def lane_of(patient_key: str | None, lanes: int) -> int:
    """The lane (0 .. lanes-1) of a patient key."""
    if not patient_key or lanes <= 1:
        return 0
    return zlib.crc32(patient_key.encode("utf-8")) % lanes
