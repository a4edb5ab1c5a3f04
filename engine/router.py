"""Moves acknowledged messages from the inbox to their destinations' outboxes, in order.

Route steps (enrichment) of a window of messages run concurrently, because INSi answers in
tens of milliseconds; their results are then committed in arrival order, in one group
commit, so an outbox always holds messages in the order they arrived. A step that fails
unexpectedly does not lose or hold back the message: it is forwarded as received and the
failure is recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.config import RouteSettings
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.header import Header
from engine.hl7.message import Message, component
from engine.logs import get_logger
from engine.pipeline import RoutedMessage, Step, run_steps
from engine.store.base import NewEntry, Store, StoredMessage

log = get_logger("engine.router")
WINDOW = 64
FRESH_LIMIT = 4 * WINDOW  # parsed messages kept for the router; beyond, it reads the store
POLL_S = 1.0


@dataclass(frozen=True)
class RoutePlan:
    """A route's steps and destinations, as the router applies them."""

    settings: RouteSettings
    steps: Sequence[Step]

    @property
    def charsets(self) -> CharsetPolicy:
        route = self.settings
        return CharsetPolicy(route.charset, route.default_charset, route.fallback_charset)


class Router:
    def __init__(
        self,
        store: Store,
        plans: dict[str, RoutePlan],
        window: int = WINDOW,
        on_routed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._plans = plans
        self._window = window
        self._on_routed = on_routed  # wakes the delivery workers
        self._wakeup = asyncio.Event()
        self._last_id = 0
        self._fresh: dict[int, RoutedMessage] = {}

    def stored(self, routed: RoutedMessage) -> None:
        """Called by the intake once a message is committed: routing starts at once, with
        the message already parsed (after a restart, messages are read from the store)."""
        if len(self._fresh) < FRESH_LIMIT:
            self._fresh[routed.message_id] = routed
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            if not await self.route_pending():
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(POLL_S):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass

    async def route_pending(self) -> int:
        """Route one window of waiting messages; returns how many were routed."""
        batch = await self._store.received(self._last_id, self._window)
        if not batch:
            return 0
        known = [stored for stored in batch if stored.route in self._plans]
        for stored in batch:
            if stored.route not in self._plans:
                log.error(
                    "message of an unconfigured route left in the inbox",
                    route=stored.route,
                    message_id=stored.message_id,
                )
        results = await asyncio.gather(*(self._apply(stored) for stored in known))
        await asyncio.gather(
            *(
                self._store.route_message(stored.message_id, entries, identity)
                for stored, (entries, identity) in zip(known, results, strict=True)
            )
        )
        self._on_routed()
        self._last_id = batch[-1].message_id
        return len(known)

    async def _apply(self, stored: StoredMessage) -> tuple[list[NewEntry], str | None]:
        plan = self._plans[stored.route]
        payload: bytes | None = None
        identity: str | None = None
        patient_key: str | None = None
        try:
            routed = self._fresh.pop(stored.message_id, None) or routed_message(
                stored.message_id, stored.route, stored.raw, plan.charsets
            )
            patient_key = patient_key_of(routed.message)
            await run_steps(plan.steps, routed)
            if routed.changed:
                payload = routed.output()
            if "identity" in routed.annotations:
                identity = json.dumps(routed.annotations["identity"], ensure_ascii=False)
        except Exception as error:  # forward as received rather than hold the queue
            log.error(
                "route step failed, message forwarded as received",
                route=stored.route,
                control_id=stored.control_id,
                exc_info=error,
            )
            identity = json.dumps({"outcome": "error", "detail": type(error).__name__})
        entries = [
            NewEntry(destination.name, payload, patient_key)
            for destination in plan.settings.destinations
        ]
        return entries, identity


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


def patient_key_of(message: Message) -> str | None:
    """The local patient identifier (PID-3 repetition of type PI, else the first one)."""
    pid = message.segment("PID")
    if pid is None:
        return None
    separator = message.separators.component
    repetitions = pid.repetitions(3)
    for repetition in repetitions:
        if component(repetition, 5, separator) == "PI":
            return component(repetition, 1, separator) or None
    return component(repetitions[0], 1, separator) or None if repetitions else None
