"""Which lane of a `parallel_by = "patient"` destination carries a patient's messages.

A lane is a strict FIFO with its own connection; every message of one patient (PID-3 local
identifier) falls in the same lane, so per-patient order holds while lanes run side by side.
Messages without a patient key all go to lane 0. The hash is CRC-32, not Python's `hash`,
so the store can compute the same lane in SQL and every process agrees on it.
"""

from __future__ import annotations

import zlib


def lane_hash(patient_key: str | None) -> int:
    """The hash a lane is taken modulo of (0 without a key); a store that selects lanes in
    SQL keeps it with each entry (PostgreSQL has no CRC-32 of its own)."""
    return zlib.crc32(patient_key.encode("utf-8")) if patient_key else 0


def lane_of(patient_key: str | None, lanes: int) -> int:
    """The lane (0 .. lanes-1) of a patient key."""
    return lane_hash(patient_key) % lanes if lanes > 1 else 0
