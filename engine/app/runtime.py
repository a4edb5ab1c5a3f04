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

Reload (SIGHUP, `ins-engine reload`): read and check the files again (`engine.app.reload`),
build the steps of the added and changed routes and bind the listeners of the added ones
(any failure there, and nothing changes), then hand the destinations to delivery, the new
steps to the router and the intakes, and stop the removed routes' listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Coroutine
from dataclasses import asdict
from typing import Any

from engine.app.descriptors import DescriptorWatch, http_connection_cap
from engine.app.reload import (
    ReloadRefused,
    keeps_socket,
    read_checked,
    refuse_fixed_changes,
    route_changes,
)
from engine.app.systemd import RELOAD_SIGNAL, STOP_SIGNALS, Notifier
from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics, keep_counters, restore_counters, save_counters
from engine.config.settings import Config, HttpSettings, RouteSettings
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
from engine.http.view import EngineView, ReloadRecord
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
        self.plans: dict[str, RoutePlan] = {}
        self.view: EngineView | None = None
        self._reloading = asyncio.Lock()
        self._serving = False  # started: a reload may apply

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
        plans = self.plans = await self._plans(self.config.routes, self.config)
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
            self.store, dict(plans), routed=handoffs.routed, decided=handoffs.decided
        )
        self._connect(router, self.delivery, self.leases)
        self._background(under_lease(self.leases, ROUTING_LEASE, lambda _: router.run()), "router")
        self._background(self.store.watch(handoffs.store_changed), "store notifications")
        for route in self.config.routes:
            self.listeners[route.name] = await self._listen(route, plans[route.name])
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
        self.metrics.config_loaded(self.leases.engine.started_at)
        self._serving = True
        self._notifier.notify("READY=1", f"STATUS=serving {len(self.listeners)} route(s)")

    async def _plans(self, routes: list[RouteSettings], config: Config) -> dict[str, RoutePlan]:
        """Each route's steps, built by their kinds (sharing `self.resources`)."""
        return {
            route.name: await build_plan(
                route, config, self.store, self.resources, state=self._state, metrics=self.metrics
            )
            for route in routes
        }

    def _intake(self, route: RouteSettings, plan: RoutePlan) -> Intake:
        assert self.store is not None
        return Intake(
            route,
            self.store,
            self._acks,
            plan,
            stored=self.handoffs.stored,
            store_timeout_s=self.config.engine.store_timeout_s,
        )

    async def _listen(self, route: RouteSettings, plan: RoutePlan) -> Listener:
        """A route's listener, bound."""
        context = server_context(route.tls) if route.tls else None
        listener = Listener(route, self._intake(route, plan), context, metrics=self.metrics)
        await self._bind(listener.start(), route.where("listen"), route.listen)
        return listener

    async def reload(self) -> ReloadRecord:
        """Apply the files as they are now, or keep the running configuration and say why
        (the log, `/metrics`, the console, `ins-engine reload`)."""
        async with self._reloading:
            self._notifier.notify("RELOADING=1")
            try:
                # Files and certificates are read off the loop: ACKs go on meanwhile.
                new = await asyncio.to_thread(read_checked, self.config.source)
                record = await self._reload(new)
            except ReloadRefused as error:
                record = ReloadRecord("refused", str(error))
                log.error("configuration reload refused", reason=record.reason)
            except Exception as error:  # a bug: say so, keep serving what runs
                record = ReloadRecord("failed", f"internal error ({type(error).__name__})")
                log.error("configuration reload failed", exc_info=error)
            self._notifier.notify("READY=1", f"STATUS=serving {len(self.listeners)} route(s)")
        self.metrics.config_reloaded(record.outcome, record.at)
        if self.view is not None:
            self.view.last_reload = record
        if self._state is not None and self.leases is not None:
            self._state.publish(
                f"reload {self.leases.engine.engine_id}", json.dumps(asdict(record))
            )
        return record

    async def _reload(self, new: Config) -> ReloadRecord:
        """Prepare everything that may fail, then swap; `ReloadRefused` before the swap
        leaves the engine as it was."""
        assert self.router is not None and self.delivery is not None
        refuse_fixed_changes(self.config, new)
        changes = route_changes(self.config, new)
        try:
            plans = await self._plans([*changes.added, *changes.changed], new)
        except ConfigError as error:
            raise ReloadRefused(str(error)) from None
        running = {route.name: route for route in self.config.routes}
        moving = [
            route for route in changes.changed if not keeps_socket(running[route.name], route)
        ]
        freed = {running[name].listen for name in changes.removed}
        freed |= {running[route.name].listen for route in moving}
        early = [route for route in [*changes.added, *moving] if route.listen not in freed]
        bound: dict[str, Listener] = {}
        try:
            for route in early:
                bound[route.name] = await self._listen(route, plans[route.name])
        except ConfigError as error:
            grace = self.config.engine.shutdown_grace_s
            await asyncio.gather(*(listener.stop(grace) for listener in bound.values()))
            raise ReloadRefused(str(error)) from None
        # The swap: from here on the new configuration is the engine's.
        grace = new.engine.shutdown_grace_s
        if isinstance(self.delivery, DeliveryProcess):
            self.delivery.reconfigure(new)
        else:
            await self.delivery.reconfigure(new.routes, grace)
        self.router.use_plans(plans)
        self.plans.update(plans)
        for route in changes.changed:
            if route not in moving:
                self.listeners[route.name].adopt(route, self._intake(route, plans[route.name]))
        going = [self.listeners.pop(name) for name in changes.removed]
        going += [self.listeners.pop(route.name) for route in moving]
        await asyncio.gather(*(listener.stop(grace) for listener in going))
        for name in changes.removed:
            del self.plans[name]
        self.listeners.update(bound)
        self.config = new
        if self.view is not None:
            self.view.config = new
        late = [route for route in [*changes.added, *moving] if route.name not in bound]
        unbound = []
        for route in late:  # on an address a stopped listener just gave up
            try:
                self.listeners[route.name] = await self._listen(route, plans[route.name])
            except ConfigError as error:  # taken meanwhile by another program
                unbound.append(str(error))
        if unbound:
            record = ReloadRecord("incomplete", "\n".join(unbound), changes.summary())
            log.error("configuration reloaded, a listener not bound", reason=record.reason)
            return record
        record = ReloadRecord("applied", changes=changes.summary())
        log.info("configuration reloaded", config=new.source, **record.changes)
        return record

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
        view = self.view = EngineView(
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
        self._serving = False
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
        """Run until SIGTERM or SIGINT, then stop cleanly; reload the configuration on
        SIGHUP (one reload at a time, in the order asked)."""
        received: list[signal.Signals] = []
        stop = asyncio.Event()
        reloads: set[asyncio.Task[ReloadRecord]] = set()

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum)
            stop.set()

        def on_reload() -> None:
            if not self._serving:  # still starting (or stopping): nothing to reload yet
                log.warning("reload asked while not serving: ignored")
                return
            task = asyncio.create_task(self.reload(), name="reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        loop.add_signal_handler(RELOAD_SIGNAL, on_reload)
        try:
            await self.start()
            await stop.wait()
            log.info("stop signal received", reason=received[0].name)
            for task in list(reloads):  # a reload half applied would leave listeners behind
                with contextlib.suppress(Exception):
                    await task
        finally:
            await self.stop()
