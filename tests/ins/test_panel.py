"""What the engine's shell shows of INSi, through what the `ins_enrich` kind offers: its
metric families on the engine's registry, the panel of its service (`/readyz` block,
gauges, banner, dashboard card with the latency of the last minute)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from engine.base.metrics import EngineMetrics
from engine.console.dashboard import RateSampler
from engine.enrich.kind import INS_ENRICH
from engine.ins.metrics import InsiMetrics
from engine.ins.panel import SIMULATED_BANNER, InsiPanel
from engine.ins.service import InsiService, open_insi_service
from engine.ins.settings import InsiSettings
from engine.ins.traits import IdentityTraits
from engine.steps.panel import Pill
from engine.steps.registry import registry
from engine.testing.clock import ManualClock

ADRTROIS = IdentityTraits("ADRTROIS", ("DOMINIQUE",), "F", dt.date(1997, 2, 26), "2A020")
INSI_FAMILIES = {
    "ins_engine_insi_calls",
    "ins_engine_insi_breaker_open",
    "ins_engine_insi_simulated",
    "ins_engine_insi_call_seconds",
    "ins_engine_insi_certificate_expiry_timestamp_seconds",
}


@pytest.fixture
def metrics() -> EngineMetrics:
    return EngineMetrics(components=registry().metric_components())


@pytest.fixture
async def insi(metrics: EngineMetrics) -> AsyncIterator[InsiService]:
    families = metrics.component(INS_ENRICH.name, InsiMetrics)
    service = await open_insi_service(InsiSettings(), metrics=families)
    yield service
    await service.aclose()


def families(metrics: EngineMetrics) -> set[str]:
    return {family.name for family in metrics.registry.collect()}


def test_the_kind_adds_insi_families_to_an_engine_before_any_call(
    metrics: EngineMetrics,
) -> None:
    assert families(metrics) >= INSI_FAMILIES
    assert INSI_FAMILIES.isdisjoint(families(EngineMetrics()))  # the engine's own has none
    made = metrics.component(INS_ENRICH.name, InsiMetrics)
    assert made is metrics.component(INS_ENRICH.name, InsiMetrics)  # registered once


async def test_calls_are_counted_on_the_engine_and_saved_with_its_counters(
    metrics: EngineMetrics, insi: InsiService
) -> None:
    await insi.search(ADRTROIS)
    saved = [(labels, value) for name, labels, value in metrics.counter_values()]
    assert ({"result": "found"}, 1.0) in saved
    again = EngineMetrics(components=registry().metric_components())
    again.restore(metrics.counter_values())
    assert again.component(INS_ENRICH.name, InsiMetrics).calls_by_result() == {"found": 1}


async def test_the_panel_reports_health_gauges_and_banner(
    metrics: EngineMetrics, insi: InsiService
) -> None:
    panel = InsiPanel(insi)
    assert panel.health() == {
        "simulated": True,
        "breaker": "closed",
        "last_error": None,
        "last_error_at": None,
    }
    panel.refresh_metrics()
    text = metrics.exposition().decode()
    assert "ins_engine_insi_simulated 1.0" in text
    assert "ins_engine_insi_breaker_open 0.0" in text
    assert panel.banner() == SIMULATED_BANNER


async def test_the_dashboard_card_shows_the_calls_and_the_latency_of_the_last_minute(
    metrics: EngineMetrics, insi: InsiService
) -> None:
    panel = InsiPanel(insi)
    clock = ManualClock()
    sampler = RateSampler(metrics, lambda: {"insi": panel}, clock)
    sampler.sample()
    assert sampler.latency_ms("insi") is None  # one sample: no span yet
    await insi.search(ADRTROIS)
    clock.advance(5)
    sampler.sample()
    seconds, calls = panel.call_totals()
    latency = sampler.latency_ms("insi")
    assert calls == 1 and latency == pytest.approx(seconds * 1000)
    card = panel.card(latency)
    rows = {row.term: row for row in card.rows}
    assert (card.title, card.css) == ("INSi", "insi")
    assert rows["Mode"].pills == (Pill("SIMULATED", "warn"),)
    assert rows["Circuit breaker"].pills == (Pill("closed", "ok breaker"),)
    assert rows["Calls"].pills == (Pill("found 1", result="found"),)
    assert rows["Latency (last min)"].text == f"{latency:.1f} ms"
    assert "Certificate" not in rows  # the simulator presents none
    assert sampler.latency_ms("another") is None  # a panel that made no call
