"""The facade the enrichment step calls: `open_insi_service(settings)` then `search(traits)`.

Around the SOAP client it adds what a feed of ADT messages needs: local validation, the search
strategy, a concurrency limit, single-flight, a result cache with a TTL, retries with back-off
for technical errors and a circuit breaker. With no `[insi] url`, the same client code talks
to the in-process simulator through an in-memory transport, and every result says simulated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import random
import socket
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx
import structlog

from engine.base.hosts import is_loopback_host
from engine.base.metrics import EngineMetrics
from engine.errors import EngineError
from engine.ins.breaker import BreakerState, CircuitBreaker
from engine.ins.cache import MemoryResultCache, ResultCache
from engine.ins.errors import (
    CircuitOpenError,
    InsiConfigurationError,
    InsiError,
    InsiResponseError,
    InsiTechnicalError,
    InvalidAnswerError,
    InvalidTraitsError,
)
from engine.ins.health import HealthBoard, InsiHealth, endpoint_of
from engine.ins.metrics import InsiMetrics
from engine.ins.outcome import SearchOutcome, SearchStatus
from engine.ins.result import CodeCR, InsiResult
from engine.ins.settings import InsiSettings
from engine.ins.simulator.handler import InsiSimulator
from engine.ins.simulator.population import population
from engine.ins.simulator.transport import SimulatorTransport
from engine.ins.singleflight import SingleFlight
from engine.ins.soap.headers import CallerIdentity
from engine.ins.strategy import plan_queries, run_strategy
from engine.ins.tls import build_tls
from engine.ins.traits import IdentityTraits, TraitsQuery, fingerprint, normalise_traits

if TYPE_CHECKING:
    from engine.ins.client import InsiClient

log = structlog.get_logger("ins.insi")

RECENT_MAX = 50_000
RECENT_TTL_S = 60.0
IN_PROCESS_URL = "http://insi-simulator.invalid/lps"
"""Address given to the client in simulator mode; the in-memory transport never resolves it."""

_STATUS_OF_CODE = {
    CodeCR.FOUND: SearchStatus.FOUND,
    CodeCR.NOT_FOUND: SearchStatus.NOT_FOUND,
    CodeCR.SEVERAL: SearchStatus.SEVERAL,
}


_RESULT_OF_CODE = {
    CodeCR.FOUND: "found",
    CodeCR.NOT_FOUND: "not_found",
    CodeCR.SEVERAL: "several_found",
}


class _CallCounter:
    """INSi calls made for one lookup, retries included."""

    count = 0


class InsiService:
    """Identity searches against INSi (or its simulator), safe to call concurrently."""

    def __init__(
        self,
        client: InsiClient,
        settings: InsiSettings,
        *,
        simulated: bool,
        cache: ResultCache | None = None,
        metrics: InsiMetrics | None = None,
        certificate_expires_at: float | None = None,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.simulated = simulated
        self._client = client
        self._settings = settings
        self._cache = cache
        self.metrics = metrics or InsiMetrics(EngineMetrics())  # an engine's, or its own
        self.certificate_expires_at = certificate_expires_at
        self._scope = settings.url or "in-process-simulator"
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(settings.max_concurrency)
        self.health = HealthBoard(InsiHealth(simulated, endpoint_of(settings.url)))
        self._breaker = CircuitBreaker(
            settings.breaker_threshold, settings.breaker_reset_s, monotonic, self._breaker_changed
        )
        self._flights: SingleFlight[SearchOutcome] = SingleFlight()
        self._recent: OrderedDict[str, tuple[SearchOutcome, float]] = OrderedDict()
        # After a configuration refusal (IDAM, certificate), calls are held for
        # breaker_reset_s: every message would otherwise send INSi a call it refuses.
        self._held: tuple[InsiConfigurationError, float] | None = None

    async def search(self, traits: IdentityTraits, *, verifying: bool = False) -> SearchOutcome:
        """Find the INS of a person; never raises for INSi trouble, the status says it.

        `verifying`: the answer will confirm an INS a message carries, so it must be at most
        `verify_max_age_s` old: INSi may have moved that INS to its history since.
        """
        try:
            normalised, key = _normalised(traits, dt.date.today(), self._scope)
        except InvalidTraitsError as error:
            log.info(
                "insi search refused locally",
                outcome=SearchStatus.INVALID_TRAITS.value,
                code=error.code,
                calls=0,
                simulated=self.simulated,
            )
            return SearchOutcome(
                SearchStatus.INVALID_TRAITS, simulated=self.simulated, detail=str(error)
            )
        max_age = self._settings.verify_max_age_s if verifying else None
        recent = self._recall(key)
        if recent is not None and self._fresh(recent, max_age):
            return recent  # the common case of a busy feed: no task, no store read
        flight = key if max_age is None else f"{key}:verify"
        outcome, shared = await self._flights.run(
            flight, lambda: self._lookup(key, normalised, max_age)
        )
        return outcome.shared() if shared else outcome

    async def aclose(self) -> None:
        """Stop pending lookups and close connections."""
        await self._flights.aclose()
        await self._client.aclose()

    def _fresh(self, outcome: SearchOutcome, max_age: float | None) -> bool:
        """Young enough for its use: any age for a search, `max_age` for a verification."""
        if max_age is None:
            return True
        age = outcome.age_s(self._wall_clock())
        return age is not None and age <= max_age

    async def _lookup(
        self, key: str, traits: IdentityTraits, max_age: float | None
    ) -> SearchOutcome:
        cached = await self._load(key)
        if cached is not None and self._fresh(cached, max_age):
            log.debug(
                "insi search",
                outcome=cached.status.value,
                calls=0,
                status="cached",
                simulated=cached.simulated,
            )
            return cached
        started = self._monotonic()
        calls = _CallCounter()
        try:
            result = await run_strategy(
                plan_queries(traits, self._settings.max_calls_per_identity),
                lambda query: self._call(query, calls),
            )
        except InsiError as error:
            outcome = self._failure(error, calls.count)
        else:
            outcome = SearchOutcome(
                status=_STATUS_OF_CODE[result.code],
                ins=result.ins,
                returned_traits=result.traits,
                history=result.history,
                calls=calls.count,
                called_at=result.called_at,
                simulated=self.simulated or result.simulated,
                detail=result.code.value,
            )
            await self._save(key, outcome)
        log.info(
            "insi search",
            outcome=outcome.status.value,
            calls=outcome.calls,
            code=outcome.detail,
            simulated=outcome.simulated,
            duration_ms=round((self._monotonic() - started) * 1000, 1),
        )
        return outcome

    async def _call(self, query: TraitsQuery, calls: _CallCounter) -> InsiResult:
        """One logical call: breaker, concurrency limit, retries with back-off and jitter."""
        if self._held is not None and self._held[1] > self._monotonic():
            raise self._held[0]  # INSi refused our configuration a moment ago: do not insist
        attempts = 0
        while True:
            self._breaker.before_call()
            attempts += 1
            calls.count += 1
            try:
                result = await self._measured_call(query)
            except InvalidAnswerError:
                self._breaker.record_neutral()  # one identity's answer, not the service's health
                raise
            except (InsiTechnicalError, InsiResponseError) as error:
                self.health.failed(error)
                self._breaker.record_failure()
                if not error.retryable or attempts > self._settings.retries:
                    raise
                log.warning("insi call failed, retrying", code=error.code, attempts=attempts)
                await self._sleep(self._backoff(attempts))
                continue
            except InsiError as error:
                self._breaker.record_neutral()
                if isinstance(error, InsiConfigurationError):
                    self.health.failed(error)
                    self._held = (error, self._monotonic() + self._settings.breaker_reset_s)
                raise
            self._breaker.record_success()
            return result

    async def _measured_call(self, query: TraitsQuery) -> InsiResult:
        """One HTTP call, timed and counted by result."""
        async with self._semaphore:
            started = self._monotonic()
            try:
                result = await self._client.search(query)
            except InsiError as error:
                self.metrics.call(_error_result(error), self._monotonic() - started)
                raise
            self.metrics.call(_RESULT_OF_CODE[result.code], self._monotonic() - started)
            return result

    def _breaker_changed(self, state: BreakerState) -> None:
        """An outage must show: a warning when calls stop going out, and when they resume."""
        health = self.health.health
        if state is BreakerState.OPEN:
            log.warning(
                "INSi circuit breaker OPEN: calls suspended after repeated failures, "
                "messages go on without INS until a trial call succeeds",
                url=health.endpoint,
                error=health.last_error,
                delay_s=self._settings.breaker_reset_s,
                simulated=self.simulated,
            )
        elif state is BreakerState.CLOSED:
            log.warning(
                "INSi circuit breaker closed: calls resume",
                url=health.endpoint,
                simulated=self.simulated,
            )
        self.health.breaker_changed(state)

    def _backoff(self, attempt: int) -> float:
        base = self._settings.retry_backoff_s * 2 ** (attempt - 1)
        return base * random.uniform(0.5, 1.5)

    def _failure(self, error: InsiError, calls: int) -> SearchOutcome:
        if isinstance(error, InsiConfigurationError):
            log.error(
                "INSI CONFIGURATION ERROR: calls are refused, fix the [insi] settings",
                code=error.code,
                error=str(error),
                calls=calls,
            )
            status = SearchStatus.CONFIGURATION_ERROR
        elif isinstance(error, InvalidAnswerError):
            log.warning("insi answer invalid for this identity", code=error.code, calls=calls)
            status = SearchStatus.INVALID_ANSWER
        else:
            if not isinstance(error, CircuitOpenError):
                log.warning("insi unavailable", code=error.code, error=str(error), calls=calls)
            status = SearchStatus.UNAVAILABLE
        return SearchOutcome(status, calls=calls, simulated=self.simulated, detail=error.code)

    async def _load(self, key: str) -> SearchOutcome | None:
        if self._cache is None or self._settings.cache_ttl_s <= 0:
            return None
        recent = self._recall(key)
        if recent is not None:
            return recent
        try:
            payload = await self._cache.load(key)
            outcome = SearchOutcome.from_payload(payload) if payload is not None else None
        except (EngineError, ValueError, KeyError, TypeError, IndexError) as error:
            log.warning("insi cache unreadable, searching again", error=type(error).__name__)
            return None
        if outcome is not None:  # the store's expiry is not known here: keep it a minute
            expires_at = self._wall_clock() + min(self._settings.cache_ttl_s, RECENT_TTL_S)
            self._remember(key, outcome, expires_at)
        return outcome

    async def _save(self, key: str, outcome: SearchOutcome) -> None:
        if self._cache is None or self._settings.cache_ttl_s <= 0 or not outcome.status.cacheable:
            return
        payload = outcome.to_payload()
        expires_at = self._wall_clock() + self._settings.cache_ttl_s
        self._remember(key, SearchOutcome.from_payload(payload), expires_at)
        try:
            await self._cache.save(key, payload, expires_at)
        except EngineError as error:
            log.warning("insi cache not saved", error=str(error))

    def _recall(self, key: str) -> SearchOutcome | None:
        """A result still valid in memory, or None."""
        recent = self._recent.get(key)
        if recent is None:
            return None
        if recent[1] <= self._wall_clock():
            del self._recent[key]
            return None
        self._recent.move_to_end(key)
        return recent[0]

    def _remember(self, key: str, outcome: SearchOutcome, expires_at: float) -> None:
        """Keep a decoded result in memory, in front of the store: a warm lookup then costs
        neither a store read nor a decode. Bounded; the least recently used go first."""
        self._recent[key] = (outcome, expires_at)
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_MAX:
            self._recent.popitem(last=False)


def _error_result(error: InsiError) -> str:
    """The `result` label of a failed call: a short fixed word per kind of failure."""
    if isinstance(error, InvalidAnswerError):
        return "invalid_answer"
    if isinstance(error, InsiConfigurationError):
        return "refused"
    return "error"


async def open_insi_service(
    settings: InsiSettings,
    cache: ResultCache | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    metrics: InsiMetrics | None = None,
) -> InsiService:
    """Build the service for `[insi]`: the real INSi over mutual TLS, or the simulator.

    Without a cache from the store, results are kept in memory (lost at restart). `clock`
    gives the call times (ZFD-6) and the age of a result: fixed in route tests, so their
    output is reproducible.
    """
    problems = settings.problems()
    if problems:
        key, expected = problems[0]
        raise InsiConfigurationError(f"[insi] {key}: {expected}", code="settings")
    cache = cache if cache is not None else MemoryResultCache()
    timeout = httpx.Timeout(settings.timeout_s)
    limits = httpx.Limits(
        max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
    )
    organisation_unit = None
    expires_at = None
    if settings.url is None:
        simulator = InsiSimulator(
            population(
                settings.simulator_persons, settings.simulator_synthetic, settings.simulator_seed
            ),
            latency_s=settings.simulator_latency_ms / 1000,
            fault_rate=settings.simulator_fault_rate,
            seed=settings.simulator_seed,
        )
        http = httpx.AsyncClient(transport=SimulatorTransport(simulator), timeout=timeout)
        url = IN_PROCESS_URL
        log.warning(
            "INSi is SIMULATED: answers come from the in-process simulator, "
            "not from the national service",
            simulated=True,
            count=len(simulator.index),
        )
    else:
        url = settings.url
        host = httpx.URL(url).host
        verify: ssl.SSLContext | bool = True
        if url.startswith("https://"):
            tls = build_tls(settings)
            verify, organisation_unit = tls.context, tls.organisation_unit
            expires_at = tls.expires_at
        http = httpx.AsyncClient(
            verify=verify, timeout=timeout, limits=limits, trust_env=not is_loopback_host(host)
        )
        if settings.simulator:
            log.warning(
                "INSi is SIMULATED: results from this endpoint are marked simulated",
                url=url,
                simulated=True,
            )
        else:
            log.info("insi client ready", url=url, simulated=False)
    caller = CallerIdentity(
        idam=settings.idam or ("SIMULATED" if settings.simulator else ""),
        software_name=settings.software_name,
        software_version=settings.software_version,
        instance_id=settings.instance_id or _default_instance_id(settings.software_name),
        emitter=settings.emitter or organisation_unit or settings.software_name,
    )
    from engine.ins.client import InsiClient  # zeep, only once an INSi client is built

    wall_clock = time.time
    if clock is None:
        client = InsiClient(http, url, caller, settings.timeout_s)
    else:
        fixed = clock

        def wall_clock() -> float:  # a result's age counts from the same clock as its call time
            return fixed().timestamp()

        client = InsiClient(http, url, caller, settings.timeout_s, clock=fixed)
    return InsiService(
        client,
        settings,
        simulated=settings.in_process or settings.simulator,
        cache=cache,
        metrics=metrics,
        certificate_expires_at=expires_at,
        wall_clock=wall_clock,
    )


@functools.lru_cache(maxsize=65536)  # a feed asks for the same patients again and again
def _normalised(traits: IdentityTraits, today: dt.date, scope: str) -> tuple[IdentityTraits, str]:
    """The traits as INSi expects them and their cache key (raises `InvalidTraitsError`)."""
    normalised = normalise_traits(traits, today)
    return normalised, fingerprint(normalised, scope)


def _default_instance_id(software_name: str) -> str:
    """A stable UUID per host, so restarts present the same installation to INSi."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{software_name}.{socket.gethostname()}"))
