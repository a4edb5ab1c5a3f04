"""An INSi outage shows: warnings when the breaker opens and closes, the control id on retry
lines, the host in connection errors, and INSi's state in `queue status`."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import httpx
import pytest

from engine.base.logs import configure_logging
from engine.hl7.charset import CharsetPolicy
from engine.ins.breaker import BreakerState
from engine.ins.client import InsiClient
from engine.ins.outcome import SearchStatus
from engine.ins.service import InsiService, open_insi_service
from engine.ins.settings import InsiSettings
from engine.ins.traits import IdentityTraits
from engine.mllp.client import MllpClient
from engine.routing.router import routed_message
from engine.steps.pipeline import BoundStep, RoutedMessage, StepResult, run_steps
from engine.testing.clock import ManualClock
from engine.testing.insi import OUTAGE, scripted_insi
from tests.ins.conftest import CALLER
from tests.support.cli import run_beside
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.ports import free_port
from tests.support.waiting import until

DOMINIQUE = IdentityTraits("ADRTROIS", ("DOMINIQUE",), "F", dt.date(1997, 2, 26))


def lines(stream: io.StringIO, event: str) -> list[dict[str, object]]:
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [record for record in records if str(record["event"]).startswith(event)]


async def test_the_breaker_warns_when_it_opens_and_when_it_closes() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    clock = ManualClock()
    async with scripted_insi(OUTAGE, OUTAGE) as (_, server):
        settings = InsiSettings(
            url=server.url, retries=0, breaker_threshold=2, breaker_reset_s=30.0, cache_ttl_s=0.0
        )
        service = InsiService(
            InsiClient(httpx.AsyncClient(trust_env=False), server.url, CALLER, settings.timeout_s),
            settings,
            simulated=True,
            monotonic=clock,
        )
        try:
            await service.search(DOMINIQUE)
            assert not lines(stream, "INSi circuit breaker")
            await service.search(DOMINIQUE)
            (opened,) = lines(stream, "INSi circuit breaker OPEN")
            assert opened["level"] == "warning"
            assert opened["url"] == f"127.0.0.1:{server.port}"
            assert str(opened["error"]).startswith("siram_40/insi_102: ")
            assert service.health.health.breaker == BreakerState.OPEN.value
            clock.advance(31)  # the script is used up: the usual search, which finds her
            assert (await service.search(DOMINIQUE)).status is SearchStatus.FOUND
            (closed,) = lines(stream, "INSi circuit breaker closed")
            assert closed["level"] == "warning"
            assert service.health.health.breaker == BreakerState.CLOSED.value
            assert service.health.health.last_error == opened["error"]  # kept for the operator
        finally:
            await service.aclose()


async def test_retry_lines_carry_the_control_id_of_the_message_being_enriched() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    settings = InsiSettings(simulator_fault_rate=1.0, retries=1, retry_backoff_s=0.0)
    service = await open_insi_service(settings)

    async def search(routed: RoutedMessage) -> StepResult:
        await service.search(DOMINIQUE)
        return StepResult("searched")

    try:
        routed = routed_message(1, "adt", adt("CTRL42"), CharsetPolicy())
        await run_steps([BoundStep("search", "test", search)], routed)
    finally:
        await service.aclose()
    (retry,) = lines(stream, "insi call failed, retrying")
    assert (retry["control_id"], retry["route"]) == ("CTRL42", "adt")
    assert retry["level"] == "warning"


async def test_a_connection_error_names_the_insi_host() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    port = free_port()  # nothing listens there
    service = await open_insi_service(
        InsiSettings(url=f"http://127.0.0.1:{port}/lps", retries=0, cache_ttl_s=0.0)
    )
    try:
        outcome = await service.search(DOMINIQUE)
    finally:
        await service.aclose()
    assert (outcome.status, outcome.detail) == (SearchStatus.UNAVAILABLE, "network")
    (unavailable,) = lines(stream, "insi unavailable")
    assert f"INSi unreachable at 127.0.0.1:{port} (ConnectError" in str(unavailable["error"])
    assert f"127.0.0.1:{port}" in str(service.health.health.last_error)


async def _queue_status(config: Path, *options: str) -> str:
    """`ins-engine queue status`, in this process beside the engine's (tests/support/cli.py)."""
    result = await run_beside("queue", "status", *options, "--config", str(config))
    assert result.status == 0, result.err
    return result.out


@pytest.mark.system
async def test_queue_status_shows_insi_breaker_last_error_and_messages_waiting(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    config = tmp_path / "engine.toml"
    config.write_text(
        '[engine]\nstore = "sqlite:///engine.db"\nlog_format = "json"\nshutdown_grace_s = 1\n\n'
        f'[insi]\nurl = "http://127.0.0.1:{port}/lps"\nretries = 0\nbreaker_threshold = 1\n'
        "breaker_reset_s = 600\n\n"
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        "[routes.enrichment]\nretry_window_s = 60\nretry_backoff_s = 1\n"
        '[[routes.destinations]]\nname = "archive"\nfile = "outbox"\n',
        encoding="utf-8",
    )
    engine = EngineProcess(config)
    await engine.start()
    try:
        client = await MllpClient.connect(*engine.address("adt"))
        await client.exchange(adt("OUT1"), 10)
        await client.close()
        await until(
            lambda: engine.logged(
                "INSi circuit breaker OPEN: calls suspended after repeated failures, "
                "messages go on without INS until a trial call succeeds"
            )
        )
        running = await _queue_status(config)
    finally:
        assert await engine.terminate() == 0
    assert f"engine      running (PID {engine.pid})" in running
    assert "waiting     1 message(s) received, not yet routed (adt 1)" in running
    assert f"INSi        127.0.0.1:{port} (SIMULATED)" in running
    assert "breaker     open since " in running and "calls SUSPENDED" in running
    assert f"network: INSi unreachable at 127.0.0.1:{port} (ConnectError" in running
    stopped = await _queue_status(config)
    assert "engine      not running (INSi state as of " in stopped
    shown = json.loads(await _queue_status(config, "--json"))
    assert shown["engine"] == {"running": False, "pid": None}
    assert (shown["insi"]["breaker"], shown["insi"]["simulated"]) == ("open", True)
    assert shown["queues"][0]["destination"] == "archive"
