"""Moves acknowledged messages from the inbox to their destinations' outboxes, in order.

Route steps of a sliding window of messages run concurrently, because a step may wait (an
INSi lookup answers in tens of milliseconds); their results are committed strictly in
arrival order, so an outbox always holds messages in the order they arrived. A run of
messages is routed in one pass: a message's steps run at once, and only one whose steps
really wait goes on in a task of its own (most answer from memory and need none). Each
commit writes the finished head of the window, outbox entries and every step's decision in
one write, then tells delivery (`Routed`) and the metrics (`Decided`): `engine.handoffs`.
A step that fails unexpectedly does not lose or hold back the message: it is forwarded as
the steps before it left it and the failure is recorded as that step's decision
(`engine.steps.pipeline`).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Coroutine, Generator
from dataclasses import replace
from typing import Any, TypeVar

from engine.base.logs import get_logger
from engine.handoffs import Decided, Routed
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.routing.patient import patient_key_of
from engine.routing.route import NO_DESTINATION, RoutePlan
from engine.steps.pipeline import RoutedMessage
from engine.store.base import NewEntry, RoutingResult, StoredMessage
from engine.store.decision import Decision
from engine.store.roles import Inbox

log = get_logger("engine.routing.router")
WINDOW = 64
FRESH_LIMIT = 4 * WINDOW  # parsed messages kept for the router; beyond, it reads the store
POLL_S = 1.0
T = TypeVar("T")
Flight = RoutingResult | asyncio.Task[RoutingResult]
"""A message in the window: its result, or the task of steps that are waiting."""


class Router:
    """Routes in arrival order, with up to `window` messages' steps running at once."""

    def __init__(
        self,
        store: Inbox,
        plans: dict[str, RoutePlan],
        window: int = WINDOW,
        routed: Routed | None = None,
        decided: Decided | None = None,
    ) -> None:
        self._store = store
        self._plans = plans
        self._window = window
        self._routed_handoff = routed or Routed()
        self._decided_handoff = decided or Decided()
        self._wakeup = asyncio.Event()
        self._fetched_id = 0  # the last message read from the inbox
        self._committed_id = 0  # the last message whose routing is committed
        # Messages the intake stored, parsed; None for one it stored dropped (not to route).
        self._fresh: dict[int, RoutedMessage | None] = {}
        self._flight: deque[tuple[str, Flight]] = deque()

    def use_plans(self, plans: dict[str, RoutePlan]) -> None:
        """A reload's plans, for each message whose routing starts from now on. A removed
        route's plan stays: what it acknowledged before the reload is routed as it was then."""
        self._plans.update(plans)

    def stored(self, routed: RoutedMessage) -> None:
        """The intake committed a message (`Stored`): routing starts at once, with
        the message already parsed and no read of the store while the intake's messages
        follow one another (after a restart, or with messages another engine received,
        they are read from the store)."""
        # A message the router has already read from the store is parsed there instead;
        # keeping it here would hold it forever. (While another engine routes, up to
        # FRESH_LIMIT parsed messages stay here, dropped when this one routes again.)
        # A message dropped before the ACK is stored as routed: its id is passed over.
        if routed.message_id > self._fetched_id and len(self._fresh) < FRESH_LIMIT:
            self._fresh[routed.message_id] = None if routed.dropped else routed
        if not routed.dropped:
            self._wakeup.set()

    def wake(self) -> None:
        """Another engine sharing the store committed messages (`StoreReceived`): look at
        once."""
        self._wakeup.set()

    async def run(self) -> None:
        """Route until cancelled. Steps run as soon as a message is read; results are
        committed as soon as every earlier message's are (a sliding window, so one slow
        INSi answer holds back commits, not the other lookups). Each run starts from the
        oldest message not routed yet, wherever another engine's router left off."""
        self._fetched_id = self._committed_id = 0
        self._fresh.clear()
        try:
            while True:
                try:
                    if await self._advance():
                        continue
                except Exception as error:  # e.g. a failed commit: read those messages again
                    log.error("routing failed, retrying", exc_info=error)
                    self._restart_from_store()
                    await asyncio.sleep(POLL_S)
                    continue
                head = self._flight[0][1] if self._flight else None
                await self._wait(head if isinstance(head, asyncio.Task) else None)
        finally:
            self._restart_from_store()

    async def route_pending(self) -> int:
        """Route everything waiting now (for tools and tests); returns how many."""
        routed = 0
        while self._flight or await self._fill():
            await asyncio.gather(*(f for _, f in self._flight if isinstance(f, asyncio.Task)))
            routed += await self._commit_done()
        return routed

    async def _advance(self) -> bool:
        """Read what fits in the window and commit the finished head; False when idle."""
        filled = await self._fill()
        committed = await self._commit_done()
        return bool(filled or committed)

    async def _fill(self) -> int:
        room = self._window - len(self._flight)
        if room <= 0:
            return 0
        fresh = self._fresh_run(room)
        if fresh:
            for routed in fresh:
                self._flight.append((routed.route, self._start(routed)))
            return len(fresh)
        batch = await self._store.received(self._fetched_id, room)
        for stored in batch:
            self._fetched_id = stored.message_id
            if stored.route not in self._plans:
                log.error(
                    "message of an unconfigured route left in the inbox",
                    route=stored.route,
                    message_id=stored.message_id,
                )
                continue
            inbound = self._fresh.pop(stored.message_id, None) or stored  # parsed already
            self._flight.append((stored.route, self._start(inbound)))
        # What the store read passed over (dropped before the ACK, another engine's) would
        # otherwise stay, and FRESH_LIMIT of them would end the hand-over for good.
        for passed in [key for key in self._fresh if key <= self._fetched_id]:
            del self._fresh[passed]
        return len(batch)

    def _fresh_run(self, room: int) -> list[RoutedMessage]:
        """The messages right after the last one read, as the intake handed them over, while
        their ids follow on (a gap: another engine's message, or one not handed over)."""
        run: list[RoutedMessage] = []
        while len(run) < room and (self._fetched_id + 1) in self._fresh:
            self._fetched_id += 1
            routed = self._fresh.pop(self._fetched_id)
            if routed is not None:
                run.append(routed)
        return run

    def _restart_from_store(self) -> None:
        """Forget the window; its messages are still 'received' and are read again."""
        for _, flight in self._flight:
            if isinstance(flight, asyncio.Task):
                flight.cancel()
        self._flight.clear()
        self._fetched_id = self._committed_id

    async def _commit_done(self) -> int:
        """Commit the finished messages at the head of the window, in order."""
        done: list[tuple[str, RoutingResult]] = []
        while self._flight:
            route, flight = self._flight[0]
            if isinstance(flight, asyncio.Task):
                if not flight.done():
                    break
                flight = flight.result()
            self._flight.popleft()
            done.append((route, flight))
        if not done:
            return 0
        await self._store.route_messages([result for _, result in done])
        self._committed_id = done[-1][1].message_id
        self._routed_handoff()
        for route, result in done:
            self._decided_handoff(route, result.decisions)
        return len(done)

    async def _wait(self, head: asyncio.Task[RoutingResult] | None) -> None:
        """Until the head of the window finishes, a message arrives, or the poll delay."""
        self._wakeup.clear()
        arrival = asyncio.ensure_future(self._wakeup.wait())
        waited: set[asyncio.Future[Any]] = {arrival}
        if head is not None:
            waited.add(head)
        try:
            await asyncio.wait(waited, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            arrival.cancel()

    def _start(self, inbound: StoredMessage | RoutedMessage) -> Flight:
        """Run a message's steps at once, as far as they go without waiting: most finish
        here, with no task and no trip through the loop; steps that wait (an INSi lookup on
        a cold cache) go on in a task, so the window's other messages run meanwhile. The
        steps run in a context of their own, as in a task: what they bind for their log
        lines (`run_steps`) stays with their message."""
        if not self._plans[inbound.route].inline:  # a kind that may not: a task, as always
            return asyncio.create_task(self._apply(inbound))
        context = contextvars.copy_context()
        steps = self._apply(inbound)
        try:
            awaited = context.run(steps.send, None)
        except StopIteration as finished:
            result: RoutingResult = finished.value
            return result
        return asyncio.create_task(_Resumed(steps, awaited), context=context)

    async def _apply(self, inbound: StoredMessage | RoutedMessage) -> RoutingResult:
        result = await self._route(inbound)
        if isinstance(inbound, StoredMessage) and inbound.only_to is not None:
            return only_to(result, inbound.only_to)
        return result

    async def _route(self, inbound: StoredMessage | RoutedMessage) -> RoutingResult:
        plan = self._plans[inbound.route]
        try:
            routed = (
                inbound
                if isinstance(inbound, RoutedMessage)
                else routed_message(inbound.message_id, inbound.route, inbound.raw, plan.charsets)
            )
            patient_key = patient_key_of(routed.message)
            routing = await plan.route(routed)
        except Exception as error:  # not even parsed: forward as received rather than hold
            control_id, message_type = _facts(inbound)
            failure = Decision("route", "route", "error", type(error).__name__)
            withheld = bool(plan.guards)  # what the guards cannot read does not leave unchecked
            log.error(
                "message could not be routed, "
                + (
                    "withheld: the route's guards cannot check it"
                    if withheld
                    else "forwarded as received"
                ),
                route=inbound.route,
                control_id=control_id,
                exc_info=error,
            )
            if withheld:
                return RoutingResult(inbound.message_id, [], [failure], dropped=True)
            entries = [
                NewEntry(destination.name, None, None)
                for destination in plan.destinations
                if destination.accept.matches(message_type)
            ]
            return RoutingResult(inbound.message_id, entries, [failure], dropped=not entries)
        entries = [NewEntry(name, payload, patient_key) for name, payload in routing.deliveries]
        return RoutingResult(inbound.message_id, entries, routing.decisions, routing.dropped)


class _Resumed(Coroutine[Any, Any, T]):
    """A started coroutine handed to a task from where it stopped: the task's first step
    gets what it waits on, and each later answer or cancellation goes straight to it (a
    cancellation before the task's first step too, so its clean-up runs where it waits)."""

    def __init__(self, steps: Coroutine[Any, Any, T], awaited: Any) -> None:
        self._steps = steps
        self._awaited: Any = awaited
        self._started = False

    def send(self, value: Any) -> Any:
        if not self._started:
            self._started = True
            return self._awaited
        return self._steps.send(value)

    def throw(self, *error: Any) -> Any:
        self._started = True
        return self._steps.throw(*error)

    def close(self) -> None:
        self._steps.close()

    def __await__(self) -> Generator[Any, Any, T]:
        raise TypeError("only a task drives a resumed coroutine")


def only_to(result: RoutingResult, chosen: frozenset[str]) -> RoutingResult:
    """A reprocessed copy goes only to the destinations chosen for it, among those its
    route's current steps send it to."""
    entries = [entry for entry in result.entries if entry.destination in chosen]
    if entries or result.dropped:
        return replace(result, entries=entries)
    return RoutingResult(result.message_id, [], [*result.decisions, NO_DESTINATION], dropped=True)


def _facts(inbound: StoredMessage | RoutedMessage) -> tuple[str, str]:
    """Control id and TYPE^EVENT of a message, however it reached the router."""
    if isinstance(inbound, RoutedMessage):
        return inbound.header.control_id, inbound.header.type_and_trigger
    return inbound.control_id, inbound.message_type


def routed_message(
    message_id: int, route: str, raw: bytes, charsets: CharsetPolicy
) -> RoutedMessage:
    """Decode and parse received bytes as every route step expects them (the engine's
    router and offline enrichment alike); raises `CharsetError` or `MessageFormatError`."""
    decoded = decode(raw, charsets)
    message = Message.parse(decoded.text)
    return RoutedMessage(
        message_id=message_id,
        route=route,
        raw=raw,
        codec=decoded.codec,
        message=message,
        header=Header.from_message(message),
    )
