"""Tables for people on a terminal: aligned columns, ages, and who holds which lease.

Engines sharing a store hold leases (routing, each delivery lane, retention); `queue
status` shows who delivers each queue, `report engines` every engine and every lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.delivery.service import is_destination_lease
from engine.store.base import EngineState, LeaseState


def age(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`, `3d04h`: how long something has lasted."""
    seconds = max(int(seconds), 0)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    for row in cells:
        print(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        )


def queue_holder(
    leases: Sequence[LeaseState], route: str, destination: str, now: float
) -> tuple[str, float | None]:
    """Which engine delivers a destination's queue and since when (the earliest of its
    lanes); `-` when none does, `several` when its lanes are spread over engines."""
    held = [
        lease
        for lease in leases
        if is_destination_lease(lease.name, route, destination) and lease.expires_at > now
    ]
    holders = {lease.holder for lease in held}
    if not holders:
        return "-", None
    since = min(lease.since for lease in held)
    return (holders.pop() if len(holders) == 1 else "several"), since


def print_engines(engines: Sequence[EngineState], leases: Sequence[LeaseState], now: float) -> None:
    """Every engine on the store, and every lease: holder, since when, until when."""
    print_table(
        ["ENGINE", "HOST", "PID", "STARTED", "LAST SEEN"],
        [
            [engine.engine_id, engine.host, engine.pid, f"{age(now - engine.started_at)} ago",
             f"{age(now - engine.seen_at)} ago"]
            for engine in engines
        ],
    )  # fmt: skip
    print()
    print_table(
        ["LEASE", "HOLDER", "SINCE", "EXPIRES"],
        [
            [lease.name, lease.holder, f"{age(now - lease.since)} ago", _expiry(lease, now)]
            for lease in leases
        ],
    )


def _expiry(lease: LeaseState, now: float) -> str:
    left = lease.expires_at - now
    return f"in {age(left)}" if left > 0 else f"expired {age(-left)} ago"
