"""The interface every destination kind (MLLP, file) offers to a delivery worker.

A sender takes one outbox entry and says what became of it. It never raises for a
delivery problem: network errors, timeouts and negative ACKs are results, and their
`error` text is written by the engine (codes and reasons, never message content), so it
can go to the store's `last_error` and to the logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from engine.store.base import OutboxEntry


class Outcome(StrEnum):
    DELIVERED = "delivered"  # AA/CA, or the file is in place
    RETRY = "retry"  # AE/CE, timeout, connection or write error: try again later
    PARK = "park"  # AR/CR: retrying will not help, a person must look


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    ack_code: str = ""  # MSA-1 of a correlated ACK
    error: str = ""  # safe text: what went wrong, without patient data
    mismatched: bool = False  # the receiver answered with the ACK of another message


class Sender(Protocol):
    """Sends one message at a time to one destination (one connection for MLLP)."""

    async def send(self, entry: OutboxEntry) -> Result: ...

    async def close(self) -> None: ...
