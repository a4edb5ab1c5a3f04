"""A route as the engine applies it to one message: the steps before the ACK, then after
the ACK its other steps and its destinations.

The router (with a store), offline enrichment, route tests and the embedding API all route
a message through this one piece, so a message goes where the engine would send it whoever
runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.config import RouteSettings
from engine.decision import Decision
from engine.hl7.charset import CharsetPolicy
from engine.pipeline import BoundStep, RoutedMessage, run_steps, screen

NO_DESTINATION = Decision("route", "route", "dropped", "no_destination")
"""Recorded when no destination takes a message: it is kept, visible as dropped."""


@dataclass(frozen=True, slots=True)
class Routing:
    """Where one message goes: (destination, bytes or None for the bytes received)."""

    deliveries: list[tuple[str, bytes | None]]
    decisions: list[Decision]
    dropped: bool


@dataclass(frozen=True)
class RoutePlan:
    """A route's built steps and its destinations, as the router applies them."""

    settings: RouteSettings
    steps: Sequence[BoundStep] = ()  # after the ACK
    before_ack: Sequence[BoundStep] = ()

    @property
    def charsets(self) -> CharsetPolicy:
        route = self.settings
        return CharsetPolicy(route.charset, route.default_charset, route.fallback_charset)

    def screen(self, routed: RoutedMessage) -> None:
        """Run the steps placed before the ACK (synchronous): they may drop or refuse."""
        screen(self.before_ack, routed)

    async def route(self, routed: RoutedMessage) -> Routing:
        """Run the route's steps; the decisions are those taken here (not before the ACK)."""
        first = len(routed.decisions)
        await run_steps(self.steps, routed)
        decisions = routed.decisions[first:]
        if routed.dropped or routed.refusal is not None:
            return Routing([], decisions, dropped=True)
        payload = routed.output() if routed.changed and not routed.failed else None
        deliveries: list[tuple[str, bytes | None]] = [
            (destination.name, payload) for destination in self.settings.destinations
        ]
        if not deliveries:
            return Routing([], [*decisions, NO_DESTINATION], dropped=True)
        return Routing(deliveries, decisions, dropped=False)
