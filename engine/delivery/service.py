"""Starts and stops every destination's lane workers, and the retention task.

One `LaneWorker` per lane: one lane per destination, or `connections` lanes (each with its
own connection) for a `parallel_by = "patient"` destination. Stopping lets each worker
finish the message it is sending, within the engine's shutdown grace, then cancels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from engine.config import DestinationSettings, RouteSettings
from engine.delivery.destination import Sender
from engine.delivery.file_sender import FileSender
from engine.delivery.mllp_sender import MllpSender
from engine.delivery.retention import Retention
from engine.delivery.worker import LaneWorker
from engine.logs import get_logger
from engine.metrics import EngineMetrics
from engine.store.base import Store

log = get_logger("engine.delivery")


def open_sender(route: str, settings: DestinationSettings) -> Sender:
    """The sender for a destination's kind (the config guarantees exactly one)."""
    if settings.mllp is not None:
        return MllpSender(route, settings)
    assert settings.file is not None
    return FileSender(settings.file)


def lane_count(settings: DestinationSettings) -> int:
    return settings.connections if settings.parallel_by == "patient" else 1


class DeliveryService:
    def __init__(
        self,
        store: Store,
        routes: Sequence[RouteSettings],
        retention_days: float,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.workers = [
            LaneWorker(
                store,
                route.name,
                destination,
                open_sender(route.name, destination),
                lane,
                lane_count(destination),
                metrics=metrics,
            )
            for route in routes
            for destination in route.destinations
            for lane in range(lane_count(destination))
        ]
        self._retention = Retention(store, retention_days)
        self._lanes: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._lanes = [
            asyncio.create_task(worker.run(), name=f"delivery {worker.name}")
            for worker in self.workers
        ]
        self._background = [asyncio.create_task(self._retention.run(), name="retention")]
        log.info("delivery started", count=len(self.workers))

    def wake(self) -> None:
        """Entries were written: idle workers look at once instead of at their next poll."""
        for worker in self.workers:
            worker.wake()

    async def stop(self, grace_s: float) -> None:
        for task in self._background:
            task.cancel()
        for worker in self.workers:
            worker.stop()
        tasks = [*self._lanes, *self._background]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        log.info("delivery stopped")
