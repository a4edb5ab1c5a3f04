"""The running engine: store, listeners, router and background tasks, started and stopped
in the order that keeps every acknowledged message safe.

Start: open the store, then the lease keeper, build every route's steps (opening what they
share, such as the INSi client), then the delivery workers (in a process of their own on a
machine with more than one core: `engine.delivery.process`), the router, then the listeners
(nothing is acknowledged before the store is ready), then the HTTP listener; then tell
systemd the engine is ready. Every engine receives; routing and each delivery lane run
under a lease, so among engines sharing a store one does each (with SQLite, the only engine
does all). Stop: tell systemd, close the HTTP listener and the MLLP listeners (busy
connections finish their message), stop the background tasks, let the delivery workers
finish the message they are sending, give the leases up so that another engine takes over
at once, close what the steps share, then close the store, which commits what is queued.
The stages hand a message on through the signals of `engine.handoffs`, whose listeners
`Engine._connect` names.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Coroutine
from typing import Any

from engine.app.descriptors import DescriptorWatch, http_connection_cap
from engine.app.systemd import STOP_SIGNALS, Notifier
from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics, keep_counters, restore_counters, save_counters
from engine.config.settings import Config, HttpSettings
from engine.config.tls import server_context
from engine.console import app as console
from engine.coordination.leases import LeaseKeeper, under_lease
from engine.coordination.state import StatePublisher
from engine.delivery.process import DeliveryProcess
from engine.delivery.service import DeliveryService
from engine.errors import ConfigError
from engine.handoffs import Handoffs
from engine.hl7.ack import AckBuilder
from engine.http import api
from engine.http.app import build_app
from engine.http.server import HttpServer
from engine.http.view import EngineView
from engine.inbound.intake import Intake
from engine.inbound.listener import Listener
from engine.routing.plans import build_plan
from engine.routing.route import RoutePlan
from engine.routing.router import Router
from engine.steps.kind import Resources
from engine.steps.registry import registry
from engine.store.backends import OpenStore, open_store, password
from engine.store.sqlite import SqliteStore

log = get_logger("engine.app.runtime")


def process_count(setting: int) -> int:
    """The processes an engine runs: as set, or (0) two when it may run on two cores or
    more (the cores this process may use: a cpuset or `taskset` counts, not the machine's)."""
    return setting or (2 if len(os.sched_getaffinity(0)) > 1 else 1)


ROUTING_LEASE = "routing"


class Engine:
    """Everything `ins-engine run` starts, for one configuration."""

    def __init__(
        self, config: Config, acks: AckBuilder | None = None, notifier: Notifier | None = None
    ) -> None:
        self.config = config
        self._acks = acks or AckBuilder()
        self._notifier = notifier or Notifier()
        kinds = registry()
        self.metrics = EngineMetrics(kinds.decision_counters(), kinds.metric_components())
        self.handoffs = Handoffs()
        self.descriptors = DescriptorWatch(self.metrics)
        self.http: HttpServer | None = None
        self.store: OpenStore | None = None
        self.leases: LeaseKeeper | None = None
        self.listeners: dict[str, Listener] = {}
        self.router: Router | None = None
        self.delivery: DeliveryService | DeliveryProcess | None = None
        self.resources = Resources()  # what steps share (the INSi client), closed at stop
        self._state: StatePublisher | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._keeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.config.engine
        # A SQLite store serves one engine: its lock is taken before anything is served.
        self.store = await open_store(
            settings.store,
            password(settings.store_password_env),
            registry().store_extensions(),
            exclusive=True,
            wal_limit_mb=settings.wal_limit_mb,
        )
        if isinstance(self.store, SqliteStore):
            self.metrics.watch_wal(self.store.wal_bytes)
        self.leases = LeaseKeeper(self.store, settings.lease_s)
        self._keeper = asyncio.create_task(self.leases.run(), name="leases")
        await restore_counters(self.metrics, self.store)
        self._state = StatePublisher(self.store)
        plans = {
            route.name: await build_plan(
                route,
                self.config,
                self.store,
                self.resources,
                state=self._state,
                metrics=self.metrics,
            )
            for route in self.config.routes
        }
        self.delivery = (
            DeliveryProcess(self.config, self.store, self.metrics, self.leases.engine.engine_id)
            if process_count(settings.processes) > 1
            else DeliveryService(
                self.store, self.config.routes, settings.retention_days, self.metrics, self.leases
            )
        )
        await self.delivery.start()
        handoffs = self.handoffs
        router = self.router = Router(
            self.store, plans, routed=handoffs.routed, decided=handoffs.decided
        )
        self._connect(router, self.delivery, self.leases)
        self._background(under_lease(self.leases, ROUTING_LEASE, lambda _: router.run()), "router")
        self._background(self.store.watch(handoffs.store_changed), "store notifications")
        for route in self.config.routes:
            intake = Intake(
                route,
                self.store,
                self._acks,
                plans[route.name],
                stored=handoffs.stored,
                store_timeout_s=settings.store_timeout_s,
            )
            context = server_context(route.tls) if route.tls else None
            listener = Listener(route, intake, context, metrics=self.metrics)
            await self._bind(listener.start(), route.where("listen"), route.listen)
            self.listeners[route.name] = listener
        if self.config.http is not None:
            await self._start_http(self.config.http, plans)
        self._background(self._notifier.watchdog(), "watchdog")
        self._background(keep_counters(self.metrics, self.store), "counters")
        self._background(self.descriptors.run(), "descriptors")
        log.info(
            "engine started",
            count=len(self.listeners),
            path=self.store.name,
            engine=self.leases.engine.engine_id,
        )
        self._notifier.notify("READY=1", f"STATUS=serving {len(self.listeners)} route(s)")

    async def _start_http(self, http: HttpSettings, plans: dict[str, RoutePlan]) -> None:
        """The HTTP listener, within its share of file descriptors (a configuration error
        when the open-file limit leaves it none)."""
        assert self.store is not None and self.delivery is not None
        cap, limit = http_connection_cap(http.max_connections, http.reserved_fds)
        if cap < 1:
            raise ConfigError(
                self.config.source,
                "http.reserved_fds",
                f"at most the open-file limit ({limit}) minus the descriptors open at start "
                f"minus one: {http.reserved_fds} leaves the HTTP listener none (raise "
                "LimitNOFILE or lower reserved_fds)",
            )
        view = EngineView(
            self.config,
            self.store,
            self.metrics,
            self.resources,
            self.listeners,
            plans,
            requeued=self.handoffs.requeued,
            delivering=self._delivering,
            descriptors_exhausted=lambda: self.descriptors.exhausted,
        )
        self.http = HttpServer(
            http, build_app(view, console.register, api.register), cap, self.metrics
        )
        await self._bind(self.http.start(), (self.config.source, "http.listen"), http.listen)

    def _delivering(self) -> bool:
        return not isinstance(self.delivery, DeliveryProcess) or self.delivery.running

    def _connect(
        self, router: Router, delivery: DeliveryService | DeliveryProcess, leases: LeaseKeeper
    ) -> None:
        """Who listens to each hand-off (who emits it, and a message's journey:
        `engine.handoffs`)."""
        handoffs = self.handoffs
        handoffs.stored.connect(router.stored)
        handoffs.store_received.connect(router.wake)
        handoffs.routed.connect(delivery.wake)
        handoffs.requeued.connect(delivery.wake)
        handoffs.store_routed.connect(delivery.wake)
        handoffs.decided.connect(self.metrics.decided)
        handoffs.store_lease_released.connect(leases.poke)

    async def _bind(
        self, start: Coroutine[Any, Any, None], where: tuple[str, str], address: str
    ) -> None:
        """Start a listener; an address already taken is a configuration error naming the
        file and key (`where`)."""
        try:
            await start
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else type(error).__name__
            raise ConfigError(
                *where,
                f"cannot listen on {address} ({reason}): is another program (or "
                "engine) listening there?",
            ) from None

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        self._notifier.notify("STOPPING=1")
        grace = self.config.engine.shutdown_grace_s
        if self.http is not None:
            await self.http.stop()
        await asyncio.gather(*(listener.stop(grace) for listener in self.listeners.values()))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.delivery is not None:
            await self.delivery.stop(grace)
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self.leases is not None:
            await self.leases.stop()
        await self.resources.aclose()
        if self._state is not None:
            await self._state.aclose()
        if self.store is not None:
            await save_counters(self.metrics, self.store)
            await self.store.close()
        log.info("engine stopped")

    async def run_until_stopped(self) -> None:
        """Run until SIGTERM, SIGINT or SIGHUP, then stop cleanly. SIGHUP (a closed terminal,
        or a supervisor asking for a reload) stops too: the configuration is read at start
        only, so a restart applies a new one."""
        received: list[signal.Signals] = []
        stop = asyncio.Event()

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum)
            stop.set()

        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await self.start()
            await stop.wait()
            log.info("stop signal received", reason=received[0].name)
        finally:
            await self.stop()
