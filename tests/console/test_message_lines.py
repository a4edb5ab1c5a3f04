"""A delivery's history on a message's page: repeated failures folded into one line."""

from __future__ import annotations

from engine.console.messages import folded, line_text
from engine.store.base import TraceEvent


def test_repeated_failed_attempts_fold_into_one_line_with_count_and_times() -> None:
    events = [TraceEvent(100.0 + n, "failed", "AE (ERR 207)") for n in range(11)]
    events += [
        TraceEvent(111.0, "parked", "AE (ERR 207)"),
        TraceEvent(120.0, "resend as 9", "receiver fixed"),
        TraceEvent(130.0, "failed", "connection refused"),
    ]
    lines = folded(events)
    assert [line_text(line) for line in lines] == [
        "12 failed attempts, parked: AE (ERR 207)",
        "operator: resend as 9 — receiver fixed",
        "attempt failed: connection refused",
    ]
    assert (lines[0].event.at, lines[0].last_at) == (100.0, 111.0)
