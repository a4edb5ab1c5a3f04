"""Starts and stops every destination's lane workers, and the retention task.

One `LaneWorker` per lane: one lane per destination, or `connections` lanes (each with its
own connection) for a `parallel_by = "patient"` destination. With a `LeaseKeeper`, each
lane runs only while this engine holds its lease (`delivery ROUTE/DESTINATION[/LANE]`), and
retention under the `retention` lease, so engines sharing a store never deliver one queue
twice. Stopping lets each worker finish the message it is sending, within the engine's
shutdown grace, then cancels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from engine.base.logs import get_logger
from engine.config.settings import DestinationSettings, RouteSettings
from engine.coordination.leases import LeaseKeeper, under_lease
from engine.delivery.destination import Sender
from engine.delivery.file_sender import FileSender
from engine.delivery.kind import kind_of
from engine.delivery.mllp_sender import MllpSender
from engine.delivery.relay import DeliveryMetrics
from engine.delivery.retention import Retention
from engine.delivery.worker import LaneWorker
from engine.store.base import LeaseState
from engine.store.roles import Delivery

log = get_logger("engine.delivery")


def open_sender(route: RouteSettings, settings: DestinationSettings) -> Sender:
    """The sender for a destination's kind (the config guarantees exactly one)."""
    if settings.mllp is not None:
        return MllpSender(route.name, settings)
    if settings.file is not None:
        return FileSender(settings.file)
    kind = kind_of(settings)
    assert kind is not None
    return kind.build(route, settings)


def lane_count(settings: DestinationSettings) -> int:
    return settings.connections if settings.parallel_by == "patient" else 1


def lane_lease(worker: LaneWorker) -> str:
    """The name of the lease a lane is delivered under: `delivery ROUTE/DESTINATION`, with
    `/LANE` for a destination delivered in parallel."""
    return f"delivery {worker.name}"


def is_destination_lease(name: str, route: str, destination: str) -> bool:
    """Whether lease `name` is that of one of a destination's lanes."""
    prefix = f"delivery {route}/{destination}"
    return name == prefix or name.startswith(prefix + "/")


def queue_holder(
    leases: Sequence[LeaseState], route: str, destination: str, now: float
) -> tuple[str, float | None]:
    """Which engine delivers a destination's queue and since when (the earliest of its
    lanes); `-` when none does, `several` when its lanes are spread over engines."""
    held = [
        lease
        for lease in leases
        if is_destination_lease(lease.name, route, destination) and lease.expires_at > now
    ]
    holders = {lease.holder for lease in held}
    if not holders:
        return "-", None
    since = min(lease.since for lease in held)
    return (holders.pop() if len(holders) == 1 else "several"), since


RETENTION_LEASE = "retention"


def _destinations(
    routes: Sequence[RouteSettings],
) -> dict[tuple[str, str], DestinationSettings]:
    """Every destination by its queue: (route, destination)."""
    return {
        (route.name, destination.name): destination
        for route in routes
        for destination in route.destinations
    }


class DeliveryService:
    def __init__(
        self,
        store: Delivery,
        routes: Sequence[RouteSettings],
        retention_days: float,
        metrics: DeliveryMetrics | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._routes = list(routes)
        self.workers = self._workers(self._routes)
        self._retention = Retention(store, retention_days)
        self._leases = leases
        self._lanes: dict[LaneWorker, asyncio.Task[None]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._reconfiguring = asyncio.Lock()

    def _workers(self, routes: Sequence[RouteSettings]) -> list[LaneWorker]:
        return [
            LaneWorker(
                self._store,
                route.name,
                destination,
                open_sender(route, destination),
                lane,
                lane_count(destination),
                metrics=self._metrics,
            )
            for route in routes
            for destination in route.destinations
            for lane in range(lane_count(destination))
        ]

    async def start(self) -> None:
        self._lanes = {worker: self._lane_task(worker) for worker in self.workers}
        self._background = [asyncio.create_task(self._run_retention(), name="retention")]
        log.info("delivery started", count=len(self.workers))

    def _lane_task(self, worker: LaneWorker) -> asyncio.Task[None]:
        return asyncio.create_task(self._run_lane(worker), name=lane_lease(worker))

    async def reconfigure(self, routes: Sequence[RouteSettings], grace_s: float) -> None:
        """A reload's destinations: the lanes of a destination removed or changed finish
        the message they are sending and stop (a removed one's leases given up), then a
        changed or added one's lanes start; the others go on untouched. A lane resumes at
        its queue's first pending entry, so order holds; a removed destination's entries
        stay in the store, undelivered."""
        async with self._reconfiguring:
            before = _destinations(self._routes)
            after = _destinations(routes)
            going = [
                worker for worker in self.workers if before[worker.queue] != after.get(worker.queue)
            ]
            for worker in going:
                worker.stop()
            stopping = [self._lanes.pop(worker) for worker in going]
            if stopping:
                _, late = await asyncio.wait(stopping, timeout=grace_s)
                for task in late:
                    task.cancel()
                await asyncio.gather(*stopping, return_exceptions=True)
            if self._leases is not None:  # another engine may deliver what this one dropped
                for worker in going:
                    if worker.queue not in after:
                        await self._leases.give_up(lane_lease(worker))
            coming = self._workers(
                [
                    replace(
                        route,
                        destinations=[
                            destination
                            for destination in route.destinations
                            if before.get((route.name, destination.name)) != destination
                        ],
                    )
                    for route in routes
                ]
            )
            for worker in coming:
                self._lanes[worker] = self._lane_task(worker)
            self.workers = [*(kept for kept in self.workers if kept not in going), *coming]
            self._routes = list(routes)
            log.info("delivery reconfigured", stopped=len(going), count=len(coming))

    async def _run_lane(self, worker: LaneWorker) -> None:
        if self._leases is None:
            await worker.run()
        else:
            await under_lease(self._leases, lane_lease(worker), worker.run, worker.stopping)

    async def _run_retention(self) -> None:
        if self._leases is None:
            await self._retention.run()
        else:
            await under_lease(self._leases, RETENTION_LEASE, lambda _: self._retention.run())

    def wake(self) -> None:
        """Entries were written (`Routed`, `Requeued`, `StoreRouted` in `engine.handoffs`):
        idle workers look at once instead of at their next poll."""
        for worker in self.workers:
            worker.wake()

    async def stop(self, grace_s: float) -> None:
        for task in self._background:
            task.cancel()
        for worker in self.workers:
            worker.stop()
        tasks = [*self._lanes.values(), *self._background]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log.info("delivery stopped")
