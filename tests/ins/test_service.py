"""The search facade: strategy, retries, timeouts, breaker, single-flight, cache, logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from engine.ins.breaker import BreakerState, CircuitBreaker
from engine.ins.cache import MemoryResultCache
from engine.ins.client import InsiClient
from engine.ins.errors import CircuitOpenError
from engine.ins.matricule import Matricule, compute_key
from engine.ins.oids import InsOid
from engine.ins.outcome import SearchOutcome, SearchStatus
from engine.ins.result import Ins
from engine.ins.service import InsiService, open_insi_service
from engine.ins.settings import InsiSettings
from engine.ins.simulator.dataset import public_test_persons
from engine.ins.simulator.handler import InsiSimulator
from engine.ins.simulator.matching import PersonIndex
from engine.ins.simulator.server import RunningSimulator, start_server
from engine.ins.strategy import plan_queries
from engine.ins.traits import IdentityTraits
from engine.testing.clock import ManualClock
from engine.testing.insi import OUTAGE, scripted_insi
from tests.ins.conftest import CALLER

LEONARDO = IdentityTraits("DE VINCI", ("LEONARDO",), "M", dt.date(2014, 2, 1))
HOUILLES = IdentityTraits("HOUILLES", ("PIERRE", "PAUL", "JACQUES"), "M", dt.date(1993, 1, 27))
ECETINSI = IdentityTraits(
    "ECETINSI", ("PIERRE-ALAIN", "MURIEL", "FLORIANT"), "M", dt.date(2009, 7, 14), "63220"
)
DOMINIQUE = IdentityTraits("ADRTROIS", ("DOMINIQUE",), "F", dt.date(1997, 2, 26))


def settings_for(server: RunningSimulator, **changes: object) -> InsiSettings:
    values: dict[str, object] = {"url": server.url, "idam": "IDAM-1", "retry_backoff_s": 0.0}
    values.update(changes)
    return InsiSettings(**values)  # type: ignore[arg-type]


async def searched(
    settings: InsiSettings, *traits: IdentityTraits, cache: MemoryResultCache | None = None
) -> list[SearchOutcome]:
    service = await open_insi_service(settings, cache)
    try:
        return [await service.search(t) for t in traits]
    finally:
        await service.aclose()


def test_plan_one_call_per_first_name_then_all_together_capped() -> None:
    plan = plan_queries(HOUILLES, 5)
    assert [q.first_name for q in plan] == ["PIERRE", "PAUL", "JACQUES", "PIERRE PAUL JACQUES"]
    assert [q.first_name for q in plan_queries(HOUILLES, 2)] == ["PIERRE", "PIERRE PAUL JACQUES"]
    assert [q.first_name for q in plan_queries(HOUILLES, 1)] == ["PIERRE"]
    assert [q.first_name for q in plan_queries(DOMINIQUE, 5)] == ["DOMINIQUE"]
    assert all(q.birth_place == "63220" for q in plan_queries(ECETINSI, 5))


async def test_a_person_found_only_with_the_full_first_name_list(tmp_path: Path) -> None:
    # INSi holds one first name written with a space; the source splits it in two.
    persons = {
        "persons": [
            {
                "birth_name": "MARTIN",
                "first_names": ["ANNE MARIE"],
                "sex": "F",
                "birth_date": "1980-05-04",
                "birth_place": "75056",
                "matricule": "",
                "oid": "1.2.250.1.213.1.4.10",
            }
        ]
    }
    persons["persons"][0]["matricule"] = "2800575056123" + compute_key("2800575056123")
    path = tmp_path / "persons.json"
    path.write_text(json.dumps(persons))
    traits = IdentityTraits("MARTIN", ("ANNE", "MARIE"), "F", dt.date(1980, 5, 4))
    [outcome] = await searched(InsiSettings(simulator_persons=str(path)), traits)
    assert outcome.status is SearchStatus.FOUND and outcome.calls == 3
    assert outcome.returned_traits is not None
    assert outcome.returned_traits.first_names_text == "ANNE MARIE"


async def test_a_02_is_never_a_success_and_the_birth_place_resolves_it() -> None:
    several, found = await searched(
        InsiSettings(), LEONARDO, replace(LEONARDO, birth_place="2A004")
    )
    assert several.status is SearchStatus.SEVERAL and several.ins is None
    assert several.detail == "02" and several.calls == 1
    assert found.status is SearchStatus.FOUND and found.ins is not None
    assert str(found.ins.matricule) == "114022A00490289"


async def test_strategy_stops_at_the_first_00_and_counts_calls(
    http_simulator: RunningSimulator, simulator: InsiSimulator
) -> None:
    found, not_found = await searched(settings_for(http_simulator), ECETINSI, HOUILLES)
    assert found.status is SearchStatus.FOUND and found.calls == 1
    assert found.ins is not None and len(found.history) == 1
    assert not_found.status is SearchStatus.NOT_FOUND and not_found.calls == 4
    assert simulator.requests == 5
    [capped] = await searched(
        settings_for(http_simulator, max_calls_per_identity=2),
        IdentityTraits("HOUILLES", ("PAUL", "JACQUES"), "M", dt.date(1993, 1, 28)),
    )
    assert capped.calls == 2


async def test_invalid_characters_are_refused_without_a_call(
    http_simulator: RunningSimulator, simulator: InsiSimulator
) -> None:
    [outcome] = await searched(
        settings_for(http_simulator), IdentityTraits("D’ÆION", ("CŒUR",), "F", dt.date(1990, 1, 1))
    )
    assert outcome.status is SearchStatus.INVALID_TRAITS and outcome.calls == 0
    assert simulator.requests == 0


async def test_siram_40_faults_are_retried_then_unavailable() -> None:
    simulator = InsiSimulator(public_test_persons(), fault_rate=1.0)
    server = await start_server(simulator)
    try:
        [outcome] = await searched(settings_for(server, retries=2), DOMINIQUE)
    finally:
        await server.aclose()
    assert outcome.status is SearchStatus.UNAVAILABLE
    assert outcome.detail == "siram_40/insi_102"
    assert outcome.calls == 3 and simulator.requests == 3


async def test_a_slow_service_times_out_as_unavailable() -> None:
    simulator = InsiSimulator(public_test_persons(), latency_s=0.3)
    server = await start_server(simulator)
    try:
        [outcome] = await searched(settings_for(server, timeout_s=0.05, retries=1), DOMINIQUE)
    finally:
        await server.aclose()
    assert outcome.status is SearchStatus.UNAVAILABLE and outcome.detail == "timeout"
    assert outcome.calls == 2


async def test_an_unreachable_endpoint_is_unavailable() -> None:
    server = await start_server(InsiSimulator(public_test_persons()))
    url = server.url
    await server.aclose()
    [outcome] = await searched(InsiSettings(url=url, retries=0), DOMINIQUE)
    assert outcome.status is SearchStatus.UNAVAILABLE and outcome.detail == "network"


async def test_a_refused_idam_is_a_configuration_error_never_retried_nor_breaking() -> None:
    simulator = InsiSimulator(public_test_persons(), idam_allow_list=["OTHER"])
    server = await start_server(simulator)
    settings = settings_for(server, breaker_threshold=1, breaker_reset_s=30.0)
    clock = ManualClock()
    http = httpx.AsyncClient(trust_env=False)
    client = InsiClient(http, server.url, CALLER, settings.timeout_s)
    service = InsiService(client, settings, simulated=True, monotonic=clock)
    try:
        first = await service.search(DOMINIQUE)
        clock.advance(31)  # past the hold that follows a configuration refusal
        second = await service.search(LEONARDO)
    finally:
        await service.aclose()
        await server.aclose()
    assert [o.status for o in (first, second)] == [SearchStatus.CONFIGURATION_ERROR] * 2
    assert first.detail == "siram_100/desir_550"
    assert simulator.requests == 2  # no retry, and the breaker (threshold 1) did not open


async def test_after_a_configuration_refusal_calls_are_held_for_a_while() -> None:
    simulator = InsiSimulator(public_test_persons(), idam_allow_list=["OTHER"])
    server = await start_server(simulator)
    try:
        first, second = await searched(
            settings_for(server, breaker_reset_s=60.0), DOMINIQUE, LEONARDO
        )
    finally:
        await server.aclose()
    assert simulator.requests == 1  # the second lookup did not ask INSi again
    assert (second.status, second.calls) == (SearchStatus.CONFIGURATION_ERROR, 0)
    assert second.detail == first.detail == "siram_100/desir_550"


async def test_the_breaker_opens_after_repeated_failures_and_closes_after_a_trial() -> None:
    clock = ManualClock()
    async with scripted_insi(OUTAGE, OUTAGE) as (insi, server):  # then the usual search
        settings = settings_for(
            server, retries=0, breaker_threshold=2, breaker_reset_s=30.0, cache_ttl_s=0.0
        )
        http = httpx.AsyncClient(trust_env=False)
        service = InsiService(
            InsiClient(http, server.url, CALLER, settings.timeout_s),
            settings,
            simulated=True,
            monotonic=clock,
        )
        try:
            first = await service.search(DOMINIQUE)
            second = await service.search(DOMINIQUE)
            assert [first.detail, second.detail] == ["siram_40/insi_102"] * 2
            assert insi.requests == 2
            blocked = await service.search(DOMINIQUE)
            assert blocked.status is SearchStatus.UNAVAILABLE
            assert blocked.detail == "circuit_open" and blocked.calls == 0
            assert insi.requests == 2
            clock.advance(31)
            trial = await service.search(DOMINIQUE)
            assert trial.status is SearchStatus.FOUND and insi.requests == 3
        finally:
            await service.aclose()


def test_breaker_lets_one_trial_through_when_half_open() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(threshold=1, reset_s=10, clock=clock)
    breaker.before_call()
    breaker.record_failure()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now += 10
    breaker.before_call()
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 10
    breaker.before_call()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()


async def test_concurrent_identical_lookups_share_one_call() -> None:
    simulator = InsiSimulator(public_test_persons(), latency_s=0.05)
    server = await start_server(simulator)
    service = await open_insi_service(settings_for(server, cache_ttl_s=0.0))
    try:
        variants = [
            DOMINIQUE,
            IdentityTraits("adrtrois ", ("Dominique",), "f", dt.date(1997, 2, 26)),
        ]
        outcomes = await asyncio.gather(*(service.search(variants[i % 2]) for i in range(20)))
    finally:
        await service.aclose()
        await server.aclose()
    assert simulator.requests == 1
    assert {o.status for o in outcomes} == {SearchStatus.FOUND}
    assert sorted(o.calls for o in outcomes) == [0] * 19 + [1]


class RecordingCache(MemoryResultCache):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[str, bytes, float]] = []
        self.loads = 0

    async def load(self, key: str) -> bytes | None:
        self.loads += 1
        return await super().load(key)

    async def save(self, key: str, payload: bytes, expires_at: float) -> None:
        self.saved.append((key, payload, expires_at))
        await super().save(key, payload, expires_at)


async def test_the_cache_survives_a_restart_and_keys_are_opaque(
    http_simulator: RunningSimulator, simulator: InsiSimulator
) -> None:
    cache = RecordingCache()
    settings = settings_for(http_simulator, cache_ttl_s=600.0)
    [first] = await searched(settings, ECETINSI, cache=cache)
    [again] = await searched(settings, ECETINSI, cache=cache)
    assert simulator.requests == 1
    assert again.calls == 0 and first.calls == 1
    assert again == first.shared()
    [(key, _, expires_at)] = cache.saved
    assert len(key) == 64 and "ECETINSI" not in key
    assert expires_at > dt.datetime.now(dt.UTC).timestamp() + 590


async def test_a_warm_lookup_is_served_from_memory_without_reading_the_store(
    http_simulator: RunningSimulator, simulator: InsiSimulator
) -> None:
    cache = RecordingCache()
    settings = settings_for(http_simulator, cache_ttl_s=600.0)
    first, again, third = await searched(settings, ECETINSI, ECETINSI, ECETINSI, cache=cache)
    assert simulator.requests == 1 and cache.loads == 1  # only the first lookup read it
    assert again == third == first.shared()
    [restarted] = await searched(settings, ECETINSI, cache=cache)  # a new service: no memory
    assert restarted == first.shared() and cache.loads == 2 and simulator.requests == 1


async def test_expired_entries_and_failures_are_not_reused(
    http_simulator: RunningSimulator, simulator: InsiSimulator
) -> None:
    clock = ManualClock()
    clock.now = dt.datetime.now(dt.UTC).timestamp()
    cache = MemoryResultCache(clock=clock)
    settings = settings_for(http_simulator, cache_ttl_s=60.0)
    await searched(settings, DOMINIQUE, cache=cache)
    clock.now += 61
    await searched(settings, DOMINIQUE, cache=cache)
    assert simulator.requests == 2
    simulator.fault_rate = 1.0
    await searched(settings_for(http_simulator, retries=0), LEONARDO, cache=cache)
    await searched(settings_for(http_simulator, retries=0), LEONARDO, cache=cache)
    assert simulator.requests == 4


def test_outcome_payload_round_trip() -> None:
    person = public_test_persons()[4]
    outcome = SearchOutcome(
        SearchStatus.FOUND,
        person.ins,
        person.returned_traits(),
        person.history,
        calls=2,
        called_at=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        simulated=True,
        detail="00",
    )
    assert SearchOutcome.from_payload(outcome.to_payload()) == outcome.shared()


async def test_no_patient_data_in_logs(http_simulator: RunningSimulator) -> None:
    traits = [
        DOMINIQUE,
        LEONARDO,
        HOUILLES,
        ECETINSI,
        IdentityTraits("D’ÆION", ("CŒUR",), "F", dt.date(1990, 1, 1)),
    ]
    with capture_logs() as logs:
        await searched(InsiSettings(), *traits)
        await searched(settings_for(http_simulator), *traits)
    assert logs
    forbidden = {
        "ADRTROIS",
        "DOMINIQUE",
        "VINCI",
        "LEONARDO",
        "HOUILLES",
        "PIERRE",
        "ECETINSI",
        "ÆION",
        "1997-02-26",
        "2014-02-01",
        "1993-01-27",
        "297022A020778",
        "1090763220834",
    }
    text = json.dumps(logs, default=str)
    assert not [word for word in forbidden if word in text]
    assert all(
        entry.get("simulated") is True
        for entry in logs
        if entry["event"] in ("insi search", "insi simulated result")
    )


@pytest.mark.parametrize("defect", ["matricule_key", "unknown_oid", "missing_trait"])
async def test_one_persons_invalid_answer_is_their_outcome_not_an_outage(defect: str) -> None:
    """A 00 that fails validation is reported for that identity at once: no retry, and the
    breaker stays closed for everyone else."""
    persons = [
        replace(p, defect=defect) if p.birth_name == "ADRUN" else p for p in public_test_persons()
    ]
    simulator = InsiSimulator(persons)
    server = await start_server(simulator)
    adrun = IdentityTraits("ADRUN", ("ZOE",), "F", dt.date(1975, 12, 31), "63220")
    settings = settings_for(server, retries=3, breaker_threshold=1)
    try:
        outcomes = await searched(settings, adrun, adrun, DOMINIQUE)
    finally:
        await server.aclose()
    bad, again, other = outcomes
    assert bad.status is again.status is SearchStatus.INVALID_ANSWER
    assert (
        bad.detail
        == {
            "matricule_key": "invalid_matricule",
            "unknown_oid": "unknown_oid",
            "missing_trait": "incomplete_answer",
        }[defect]
    )
    assert (bad.calls, again.calls) == (1, 1)  # neither retried nor cached
    assert other.status is SearchStatus.FOUND  # a breaker at threshold 1 would have opened
    assert simulator.requests == 3


async def test_a_verification_needs_a_recent_answer_the_search_does_not() -> None:
    """INSi moved the NIA to its history and gave a NIR: a day-old cached answer must not
    verify the NIA, while a search without INS may still use it."""
    nia_person = next(p for p in public_test_persons() if p.birth_name == "PROVISOIRE")
    nir = Ins(Matricule.parse("1090763220999" + compute_key("1090763220999")), InsOid.NIR)
    simulator = InsiSimulator([nia_person])
    server = await start_server(simulator)
    clock = ManualClock()
    clock.now = dt.datetime.now(dt.UTC).timestamp()
    settings = settings_for(server, verify_max_age_s=3600.0, cache_ttl_s=86400.0)
    service = InsiService(
        InsiClient(httpx.AsyncClient(trust_env=False), server.url, CALLER, settings.timeout_s),
        settings,
        simulated=True,
        cache=MemoryResultCache(clock=clock),
        wall_clock=clock,
    )
    traits = nia_person.traits()
    try:
        first = await service.search(traits, verifying=True)
        assert first.ins == nia_person.ins and first.calls == 1
        simulator.index = PersonIndex([replace(nia_person, ins=nir, history=(nia_person.ins,))])
        clock.now += 1800  # within verify_max_age_s: the cached answer still verifies
        assert (await service.search(traits, verifying=True)).ins == nia_person.ins
        clock.now += 86400 - 1800 - 60  # a day old: searches reuse it, verifications do not
        assert (await service.search(traits)).ins == nia_person.ins
        assert simulator.requests == 1
        fresh = await service.search(traits, verifying=True)
        assert (fresh.ins, fresh.history, fresh.calls) == (nir, (nia_person.ins,), 1)
        assert (await service.search(traits)).ins == nir  # the fresh answer replaced it
        assert simulator.requests == 2
    finally:
        await service.aclose()
        await server.aclose()
