"""At info, a listener says what it answered once a minute, by outcome, never per message."""

from __future__ import annotations

from structlog.testing import capture_logs

from engine.inbound.traffic_log import TrafficLog
from engine.mllp.client import MllpClient
from engine.testing.clock import ManualClock


def test_counts_by_outcome_once_an_interval_and_nothing_when_idle() -> None:
    clock = ManualClock(100.0)
    traffic = TrafficLog("adt", clock=clock)
    for outcome, duplicate in [("accepted", False)] * 3 + [("accepted", True), ("rejected", False)]:
        traffic.count(outcome, duplicate)
    clock.now += 60
    with capture_logs() as logs:
        traffic.flush()
        traffic.flush()  # nothing answered since: no line
    assert logs == [
        {
            "event": "messages handled",
            "route": "adt",
            "count": 5,
            "seconds": 60.0,
            "accepted": 4,
            "duplicate": 1,
            "rejected": 1,
            "log_level": "info",
        }
    ]


async def test_a_refused_message_is_a_warning_an_accepted_one_is_counted(start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = await start_engine('[[routes.destinations]]\nname = "d"\nfile = "out"\n', enrich=False)
    host, port = engine.listeners["adt"].address
    accepted = b"MSH|^~\\&|S|F|R|F|20240101||ADT^A28^ADT_A05|OK1|P|2.5\rPID|1\r"
    refused = b"MSH|^~\\&|S|F|R|F|20240101||ORU^R01^ORU_R01|NO1|P|2.5\rPID|1\r"
    client = await MllpClient.connect(host, port)
    with capture_logs() as logs:
        for payload in (accepted, refused):
            await client.exchange(payload, 5)
        await client.close()
        await engine.listeners["adt"].stop(1)
    handled = [(e["log_level"], e["control_id"]) for e in logs if e["event"] == "message handled"]
    assert handled == [("warning", "NO1")]  # the accepted one's line is at debug
    [summary] = [e for e in logs if e["event"] == "messages handled"]
    assert (summary["count"], summary["accepted"], summary["rejected"]) == (2, 1, 1)
