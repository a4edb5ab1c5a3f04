"""The delivery process: the engine's lanes and retention, on a core of their own.

`ins-engine run` starts it (`ins-engine deliver`, not for people) and talks to it over a
socket pair (`engine.delivery.relay`): the configuration first, then wake-ups and the stop
order. It opens the store beside the engine (as the operator commands do) and holds the
delivery leases under an identity of its own. With SQLite it reads on its own connection
(WAL lets it, beside the writer) and asks the engine to make its writes, so that the file has
one writer; with PostgreSQL it writes itself, as engines sharing a database do. It dies with
the engine (`PR_SET_PDEATHSIG`): a delivery never outlives the engine that routed it, so a
second engine on the same SQLite store can never find one still running.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import signal
import socket
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar, cast

from engine.app.systemd import RELOAD_SIGNAL, STOP_SIGNALS
from engine.base.logs import configure_logging, get_logger
from engine.coordination.leases import LeaseKeeper, engine_identity
from engine.delivery.relay import (
    Answer,
    Ask,
    Attempts,
    Channel,
    Configure,
    Ready,
    Reconfigure,
    RelayedMetrics,
    Stop,
    ToEngine,
    ToProcess,
    Wake,
    to_engine,
)
from engine.delivery.service import DeliveryService
from engine.delivery.writes import (
    ClaimLease,
    EngineSeen,
    EngineStopped,
    MarkDelivered,
    MarkDeliveredMany,
    Prune,
    RecordFailure,
    ReleaseLease,
    Write,
)
from engine.errors import EngineError, StoreError
from engine.store.backends import OpenStore, open_store, password
from engine.store.base import EngineState, EntryStatus, Lease, LeaseClaim, OutboxEntry, Pruned
from engine.store.roles import DeliveryStore

log = get_logger("engine.delivery")
RELAY_INTERVAL_S = 0.25
_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def die_with_parent(parent: int) -> None:
    """Be killed when the engine that started this process dies, however it dies; ignore
    the stop and reload signals a service manager or a terminal sends to the whole group, so
    that the engine stops this process in its own order (after its listeners and its router)
    and hands it a reloaded configuration itself (`Reconfigure`)."""
    for signum in (*STOP_SIGNALS, RELOAD_SIGNAL):
        signal.signal(signum, signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request was in place
        os._exit(1)


class EngineWrites:
    """The process's store: reads on its own connection, writes asked of the engine."""

    shared = False  # the engine's store, which one engine serves

    def __init__(self, store: OpenStore, channel: Channel[ToEngine, ToProcess]) -> None:
        self._store = store
        self._channel = channel
        self._numbers = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self._gone = False

    async def pending_entries(
        self,
        route: str,
        destination: str,
        after_entry_id: int,
        limit: int,
        lane: int = 0,
        lanes: int = 1,
    ) -> list[OutboxEntry]:
        return await self._store.pending_entries(
            route, destination, after_entry_id, limit, lane, lanes
        )

    async def entry_status(self, entry_id: int) -> EntryStatus | None:
        return await self._store.entry_status(entry_id)

    async def mark_delivered(
        self, entry_id: int, ack_code: str, fence: Lease | None = None
    ) -> bool:
        return await self._ask(MarkDelivered(entry_id, ack_code, fence))

    async def mark_delivered_many(
        self, marks: Sequence[tuple[int, str]], fence: Lease | None = None
    ) -> list[bool]:
        return await self._ask(MarkDeliveredMany(list(marks), fence))

    async def record_failure(
        self,
        entry_id: int,
        error: str,
        next_attempt_at: float,
        park: bool,
        fence: Lease | None = None,
    ) -> None:
        await self._ask(RecordFailure(entry_id, error, next_attempt_at, park, fence))

    async def prune(self, before: float, limit: int) -> Pruned:
        return await self._ask(Prune(before, limit))

    async def claim_lease(
        self, name: str, holder: str, lease_s: float, force: bool = False
    ) -> LeaseClaim:
        return await self._ask(ClaimLease(name, holder, lease_s, force))

    async def release_lease(self, lease: Lease) -> None:
        await self._ask(ReleaseLease(lease))

    async def engine_seen(self, engine: EngineState) -> None:
        await self._ask(EngineSeen(engine))

    async def engine_stopped(self, engine_id: str) -> None:
        await self._ask(EngineStopped(engine_id))

    async def _ask(self, write: Write[T]) -> T:
        if self._gone:
            raise StoreError("the engine is gone: nothing more is recorded")
        number = next(self._numbers)
        future = self._waiting[number] = asyncio.get_running_loop().create_future()
        self._channel.send(Ask(number, write))
        return cast(T, await future)  # the engine applied `write`: its answer is a T

    def answered(self, answer: Answer) -> None:
        future = self._waiting.pop(answer.number, None)
        if future is None or future.done():
            return
        if answer.ok:
            future.set_result(answer.value)
        elif isinstance(answer.value, BaseException):
            future.set_exception(answer.value)
        else:
            future.set_exception(StoreError("store write failed"))

    def engine_gone(self) -> None:
        self._gone = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(StoreError("the engine is gone: nothing more is recorded"))
        self._waiting.clear()


async def serve(control: socket.socket) -> None:
    """Deliver until the engine says stop or goes away."""
    channel = await to_engine(control)
    first = await channel.receive()
    if not isinstance(first, Configure):
        raise EngineError("the engine sent no configuration")
    config, engine_id = first.config, first.engine_id
    configure_logging(config.engine.log_level, config.engine.log_format)
    settings = config.engine
    # No step kind's tables: the engine created them, and this process records no decision.
    opened = await open_store(settings.store, password(settings.store_password_env))
    remote = None if opened.shared else EngineWrites(opened, channel)
    store: DeliveryStore = opened if remote is None else remote
    # Named after the engine it delivers for, with this process's own PID.
    identity = replace(engine_identity(), engine_id=f"{engine_id}/delivery")
    leases = LeaseKeeper(store, settings.lease_s, identity)
    metrics = RelayedMetrics()
    service = DeliveryService(store, config.routes, settings.retention_days, metrics, leases)
    stop = asyncio.Event()
    listening = asyncio.create_task(
        _listen(channel, service, remote, stop, settings.shutdown_grace_s), name="orders"
    )
    keeper = asyncio.create_task(leases.run(), name="leases")
    await service.start()

    def changed(what: str) -> None:  # engines sharing a store (PostgreSQL) notify each other
        if what == "routed":
            service.wake()
        elif what == "lease":
            leases.poke()

    background = [
        asyncio.create_task(opened.watch(changed), name="store notifications"),
        asyncio.create_task(_relay(metrics, channel), name="relay"),
    ]
    channel.send(Ready())
    await stop.wait()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    await service.stop(settings.shutdown_grace_s)
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    await leases.stop()
    channel.send(Attempts(metrics.take()))
    with contextlib.suppress(ConnectionError):
        await channel.drain()
    listening.cancel()
    await asyncio.gather(listening, return_exceptions=True)
    await opened.close()
    channel.close()


async def _listen(
    channel: Channel[ToEngine, ToProcess],
    service: DeliveryService,
    remote: EngineWrites | None,
    stop: asyncio.Event,
    grace_s: float,
) -> None:
    """The engine's wake-ups, reloads, answers and stop order, until it says stop or goes
    away."""
    reloads: set[asyncio.Task[None]] = set()
    while (message := await channel.receive()) is not None:
        match message:
            case Wake():
                service.wake()
            case Reconfigure(config):  # lanes stop while answers keep coming: not awaited here
                task = asyncio.create_task(service.reconfigure(config.routes, grace_s))
                reloads.add(task)
                task.add_done_callback(reloads.discard)
            case Answer() if remote is not None:
                remote.answered(message)
            case Stop():
                stop.set()
    if remote is not None:
        remote.engine_gone()
    stop.set()


async def _relay(metrics: RelayedMetrics, channel: Channel[ToEngine, ToProcess]) -> None:
    """Send the attempts made since the last batch, a few times a second."""
    while True:
        await asyncio.sleep(RELAY_INTERVAL_S)
        attempts = metrics.take()
        if attempts:
            channel.send(Attempts(attempts))
