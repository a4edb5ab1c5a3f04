"""A listener's incidents: a few lines of each kind per interval, then one line of counts."""

from __future__ import annotations

from structlog.testing import capture_logs

from engine.inbound.incident_log import IncidentLog
from engine.testing.clock import ManualClock


def test_a_flood_gives_a_few_lines_per_kind_and_one_line_of_counts_per_interval() -> None:
    clock = ManualClock(100.0)
    incidents = IncidentLog("adt", detail_lines=2, clock=clock)
    written = [incidents.detail("refused") for _ in range(1000)]
    assert written == [True, True] + [False] * 998
    assert incidents.detail("junk"), "each kind has its own allowance"
    for _ in range(1000):
        incidents.count("refused_max_connections", "10.0.0.1")
    incidents.count("junk_bytes", "10.0.0.2", 4096)
    clock.now += 10.0
    with capture_logs() as logs:
        incidents.flush()
        incidents.flush()  # nothing since: no line
    assert logs == [
        {
            "event": "listener incidents",
            "route": "adt",
            "seconds": 10.0,
            "address": "10.0.0.1",
            "addresses": 2,
            "junk_bytes": 4096,
            "lines_left_out": 998,
            "refused_max_connections": 1000,
            "log_level": "warning",
        }
    ]
    assert incidents.detail("refused"), "a new interval, a new allowance"
