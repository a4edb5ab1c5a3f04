"""The store writes a delivery process asks its engine to make, one record each.

With SQLite the engine's connection is the store's only writer, so a delivery process does
not write the file itself: it sends one of these over its channel (`engine.delivery.relay`),
and the engine applies it to its own store, where it joins the engine's group commits. Each
write names its operation and its arguments, and says what its answer is (`Write[bool]`...),
so both ends are checked by the type checker; nothing else can be asked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Generic, TypeVar

from engine.store.base import EngineState, Lease, LeaseClaim, Pruned
from engine.store.roles import DeliveryStore

T = TypeVar("T")


class Write(ABC, Generic[T]):
    """One write of a delivery process, and its answer's type."""

    __slots__ = ()

    @abstractmethod
    async def apply(self, store: DeliveryStore) -> T:
        """Make the write on the engine's store."""


@dataclass(frozen=True, slots=True)
class MarkDelivered(Write[bool]):
    entry_id: int
    ack_code: str
    fence: Lease | None

    async def apply(self, store: DeliveryStore) -> bool:
        return await store.mark_delivered(self.entry_id, self.ack_code, self.fence)


@dataclass(frozen=True, slots=True)
class MarkDeliveredMany(Write[list[bool]]):
    marks: list[tuple[int, str]]
    fence: Lease | None

    async def apply(self, store: DeliveryStore) -> list[bool]:
        return await store.mark_delivered_many(self.marks, self.fence)


@dataclass(frozen=True, slots=True)
class RecordFailure(Write[None]):
    entry_id: int
    error: str
    next_attempt_at: float
    park: bool
    fence: Lease | None

    async def apply(self, store: DeliveryStore) -> None:
        await store.record_failure(
            self.entry_id, self.error, self.next_attempt_at, self.park, self.fence
        )


@dataclass(frozen=True, slots=True)
class Prune(Write[Pruned]):
    before: float
    limit: int

    async def apply(self, store: DeliveryStore) -> Pruned:
        return await store.prune(self.before, self.limit)


@dataclass(frozen=True, slots=True)
class ClaimLease(Write[LeaseClaim]):
    name: str
    holder: str
    lease_s: float
    force: bool

    async def apply(self, store: DeliveryStore) -> LeaseClaim:
        return await store.claim_lease(self.name, self.holder, self.lease_s, self.force)


@dataclass(frozen=True, slots=True)
class ReleaseLease(Write[None]):
    lease: Lease

    async def apply(self, store: DeliveryStore) -> None:
        await store.release_lease(self.lease)


@dataclass(frozen=True, slots=True)
class EngineSeen(Write[None]):
    engine: EngineState

    async def apply(self, store: DeliveryStore) -> None:
        await store.engine_seen(self.engine)


@dataclass(frozen=True, slots=True)
class EngineStopped(Write[None]):
    engine_id: str

    async def apply(self, store: DeliveryStore) -> None:
        await store.engine_stopped(self.engine_id)
