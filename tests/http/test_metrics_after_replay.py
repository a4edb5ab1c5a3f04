"""Metrics and health over real HTTP from an `ins-engine run` subprocess that received
hl7_samples/ through `ins-engine replay`: every count equals what was sent, delivered and
decided, and survives a clean restart.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.testing.receiver import Receiver
from tests.replay.conftest import SAMPLES
from tests.replay.corpus import EXPECTATIONS, MESSAGES
from tests.support.cli import run_beside
from tests.support.engine_process import EngineProcess
from tests.support.metrics import labelled, value
from tests.support.waiting import HANG_GUARD_S

pytestmark = pytest.mark.system


@dataclass(frozen=True)
class Scraped:
    summary: dict[str, Any]  # `ins-engine replay --json`
    metrics: str
    readyz: dict[str, Any]
    healthz: int
    restarted_metrics: str
    calls_recorded: int  # INSi calls the store's identity records count


async def scrape(url: str) -> tuple[str, dict[str, Any], int]:
    async with aiohttp.ClientSession(url) as session:
        async with session.get("/metrics") as answer:
            metrics = await answer.text()
        async with session.get("/readyz") as answer:
            readyz = await answer.json()
        async with session.get("/healthz") as answer:
            healthz = answer.status
    return metrics, readyz, healthz


async def scrape_when_delivered(url: str, count: int) -> tuple[str, dict[str, Any], int]:
    """A scrape once `/metrics` counts `count` deliveries: the delivery process relays its
    counts a moment after the receiver has the messages (each ACK read, then the relay)."""
    async with asyncio.timeout(HANG_GUARD_S):
        while True:
            scraped = await scrape(url)
            delivered = value(
                scraped[0],
                "ins_engine_messages_delivered_total",
                route="adt",
                destination="downstream",
            )
            if delivered == count:
                return scraped
            await asyncio.sleep(0.05)


async def run(folder: Path) -> Scraped:
    async with Receiver() as downstream:
        config = folder / "engine.toml"
        config.write_text(
            f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\nlog_format = "json"\n\n'
            '[http]\nlisten = "127.0.0.1:0"\n\n'
            '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n\n'
            f'[[routes.destinations]]\nname = "downstream"\nmllp = "{downstream.address}"\n',
            encoding="utf-8",
        )
        engine = EngineProcess(config)
        await engine.start()
        try:
            host, port = engine.address("adt")
            replay = await run_beside("replay", str(SAMPLES), "--to", f"{host}:{port}", "--json")
            assert replay.status == 0, replay.err
            await downstream.wait_for(len(MESSAGES))
            metrics, readyz, healthz = await scrape_when_delivered(
                engine.http_address(), len(MESSAGES)
            )
            assert await engine.terminate() == 0
            await engine.start()
            restarted, _, _ = await scrape(engine.http_address())
        finally:
            engine.kill()
    with sqlite3.connect(folder / "engine.db") as connection:
        records = [
            json.loads(row[0]) for row in connection.execute("SELECT record FROM identity_outcomes")
        ]
    return Scraped(
        json.loads(replay.out),
        metrics,
        readyz,
        healthz,
        restarted,
        sum(record["calls"] for record in records),
    )


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    yield asyncio.run(run(tmp_path_factory.mktemp("metrics")))


def test_acks_counted_as_the_sender_saw_them(scraped: Scraped) -> None:
    sent = {code: count for code, count in scraped.summary["acks"].items() if count}
    assert sent == Counter(str(entry["ack"]) for entry in EXPECTATIONS)
    assert labelled(scraped.metrics, "ins_engine_messages_received_total", "ack_code") == sent
    assert value(scraped.metrics, "ins_engine_ack_seconds_count") == len(MESSAGES)


def test_deliveries_counted(scraped: Scraped) -> None:
    delivered = value(
        scraped.metrics,
        "ins_engine_messages_delivered_total",
        route="adt",
        destination="downstream",
    )
    assert delivered == len(MESSAGES)
    assert value(scraped.metrics, "ins_engine_delivery_seconds_count") == len(MESSAGES)
    pending = value(
        scraped.metrics,
        "ins_engine_queue_depth",
        route="adt",
        destination="downstream",
        status="pending",
    )
    assert pending == 0


def test_enrichment_outcomes_counted_as_decided(scraped: Scraped) -> None:
    expected = Counter(str(entry["outcome"]) for entry in EXPECTATIONS)
    outcomes = labelled(scraped.metrics, "ins_engine_enrichment_outcomes_total", "outcome")
    assert outcomes == expected
    steps = labelled(scraped.metrics, "ins_engine_step_decisions_total", "outcome")
    assert steps == expected, "the route's one step is the enrichment"


def test_insi_calls_counted_as_recorded(scraped: Scraped) -> None:
    calls = labelled(scraped.metrics, "ins_engine_insi_calls_total", "result")
    assert sum(calls.values()) == scraped.calls_recorded > 0
    assert set(calls) <= {"found", "not_found", "several_found"}
    assert value(scraped.metrics, "ins_engine_insi_call_seconds_count") == scraped.calls_recorded
    assert value(scraped.metrics, "ins_engine_insi_breaker_open") == 0
    assert value(scraped.metrics, "ins_engine_insi_simulated") == 1


def test_health_after_the_replay(scraped: Scraped) -> None:
    assert scraped.healthz == 200
    assert scraped.readyz["status"] == "ready"
    assert scraped.readyz["insi"]["simulated"] is True


def test_counters_survive_a_clean_restart(scraped: Scraped) -> None:
    for name, label in (
        ("ins_engine_messages_received_total", "ack_code"),
        ("ins_engine_messages_delivered_total", "destination"),
        ("ins_engine_insi_calls_total", "result"),
        ("ins_engine_enrichment_outcomes_total", "outcome"),
    ):
        before = labelled(scraped.metrics, name, label)
        assert labelled(scraped.restarted_metrics, name, label) == before, name
    assert value(scraped.restarted_metrics, "ins_engine_ack_seconds_count") == 0


def test_no_control_id_in_any_label(scraped: Scraped) -> None:
    for message in MESSAGES:
        assert message.control_id not in scraped.metrics
