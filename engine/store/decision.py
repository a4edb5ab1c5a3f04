"""What one route step decided for one message, as the router hands it to the store.

The store keeps every decision in a generic table (which step, of which kind, for which
destination, with what outcome), so a message's journey can be shown step by step without
knowing any step kind. `payload` is the step kind's own record: the store gives it to the
kind's store extension, if it has one, and keeps it nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROUTE = ""
"""The `destination` of a decision taken by a route step (before any destination's own steps)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One step's decision: `outcome` and `detail` are short codes, safe to log and show
    (never message content); `payload` may hold patient data and is never shown."""

    step: str  # the step's name in its route
    kind: str  # the registered step kind
    outcome: str
    detail: str = ""
    destination: str = ROUTE
    payload: Any = field(default=None, repr=False, compare=False)
