"""Where a message goes after the ACK: the hand-offs between the stages of its journey.

    sender ──MLLP──▶ listener (engine.inbound.listener): the blocks of one read off a connection
      ──▶ intake (engine.inbound.intake): each admitted or refused (engine.inbound.admission),
          then committed to the inbox: durable before anything is acknowledged
      ──Stored──▶ router (engine.routing.router) notes the parsed message; the intake's
          answer goes back and the listener writes the ACK to the sender
      router: the route's steps (engine.routing.route, engine.steps), a window of messages
          at once, committed in arrival order as outbox entries and step decisions
      ──Routed──▶ delivery (engine.delivery.service, or engine.delivery.process in a
          process of its own): each lane's worker (engine.delivery.worker) sends its
          oldest entry downstream, waits for the downstream ACK and marks the entry
          delivered; while it fails, it retries it (or parks it) and sends nothing behind
      ──Decided──▶ metrics: each routed message's decisions, by step and outcome

Four more wake a stage whose work comes from elsewhere: `Requeued` (an operator queued
entries again), and `StoreReceived`, `StoreRouted`, `StoreLeaseReleased` (another engine
sharing the store committed messages or entries, or gave a lease up).

Each hand-off is a `Signal`: the emitter is given it and calls it; `engine.app.runtime`
connects the listeners, in one place. A signal calls its listeners in the emitter's task, in
the order connected: no queue and no task, so a listener only notes the news (sets an event,
keeps a parsed message) and returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, ParamSpec

from engine.steps.pipeline import RoutedMessage
from engine.store.decision import Decision

P = ParamSpec("P")


class Signal(Generic[P]):
    """Listeners called, synchronously and in the order connected, each time it is emitted."""

    def __init__(self) -> None:
        self._listeners: list[Callable[P, None]] = []

    def connect(self, listener: Callable[P, None]) -> None:
        self._listeners.append(listener)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:
            listener(*args, **kwargs)


class Stored(Signal[[RoutedMessage]]):
    """Emitted by the intake once a message is committed (its ACK about to go), with the
    message already parsed; not for a duplicate nor one whose before-ACK step failed (the
    router reads that one from the store). The router listens: it routes at once."""


class Routed(Signal[[]]):
    """Emitted by the router once outbox entries are committed. Delivery listens: idle lane
    workers look at once instead of at their next poll."""


class Decided(Signal[[str, Sequence[Decision]]]):
    """Emitted by the router for each message whose routing is committed: its route and its
    step decisions. The metrics listen (decisions by step and outcome)."""


class Requeued(Signal[[]]):
    """Emitted by the console when an operator queues entries again. Delivery listens."""


class StoreReceived(Signal[[]]):
    """Emitted by the store's watch when an engine sharing the store committed messages
    (another engine's are the news: the store may tell this one of its own too). The router
    listens."""


class StoreRouted(Signal[[]]):
    """Emitted by the store's watch when an engine sharing the store committed outbox
    entries. Delivery listens."""


class StoreLeaseReleased(Signal[[]]):
    """Emitted by the store's watch when an engine sharing the store gave a lease up. The
    lease keeper listens: it takes the lease over at once."""


class Handoffs:
    """One engine's hand-offs, for the runtime to give to emitters and connect to listeners."""

    def __init__(self) -> None:
        self.stored = Stored()
        self.routed = Routed()
        self.decided = Decided()
        self.requeued = Requeued()
        self.store_received = StoreReceived()
        self.store_routed = StoreRouted()
        self.store_lease_released = StoreLeaseReleased()

    def store_changed(self, what: str) -> None:
        """The store's watch callback (`Store.watch`): each notification as its hand-off."""
        if what == "received":
            self.store_received()
        elif what == "routed":
            self.store_routed()
        elif what == "lease":
            self.store_lease_released()
