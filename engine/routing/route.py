"""A route as the engine applies it to one message: the steps before the ACK, then after
the ACK its other steps and its destinations.

After the route's steps, each destination whose `accept` matches the message's MSH-9 takes
it, in the route's order; a destination with steps of its own runs them on its own copy
(their changes and drops concern that destination alone). A destination step that fails
sends that destination the message as the route's steps left it.

The outbound guards run last on whatever leaves: on the route's output (what destinations
without steps of their own receive, and what the enrichment API answers), and again on each
destination's own copy. A message a guard withholds goes nowhere.

The router (with a store), offline enrichment, route tests and the embedding API all route
a message through this one piece, so a message goes where the engine would send it whoever
runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.config.settings import RouteSettings
from engine.hl7.charset import CharsetPolicy
from engine.hl7.patterns import Patterns
from engine.steps.pipeline import BoundGuard, BoundStep, RoutedMessage, guard, run_steps, screen
from engine.store.decision import Decision

NO_DESTINATION = Decision("route", "route", "dropped", "no_destination")
"""Recorded when no destination takes a message: it is kept, visible as dropped."""


@dataclass(frozen=True, slots=True)
class Routing:
    """Where one message goes: (destination, bytes or None for the bytes received)."""

    deliveries: list[tuple[str, bytes | None]]
    decisions: list[Decision]
    dropped: bool


@dataclass(frozen=True, slots=True)
class DestinationPlan:
    name: str
    accept: Patterns
    steps: Sequence[BoundStep] = ()


@dataclass(frozen=True)
class RoutePlan:
    """A route's built steps and its destinations, as the router applies them. Without
    `destinations`, those of the settings, with no steps of their own."""

    settings: RouteSettings
    steps: Sequence[BoundStep] = ()  # after the ACK
    before_ack: Sequence[BoundStep] = ()
    destinations: Sequence[DestinationPlan] = field(default=())
    guards: Sequence[BoundGuard] = ()  # on everything that leaves, after every step

    def __post_init__(self) -> None:
        if not self.destinations:
            plans = [
                DestinationPlan(d.name, Patterns(d.accept)) for d in self.settings.destinations
            ]
            object.__setattr__(self, "destinations", plans)

    @property
    def inline(self) -> bool:
        """Whether every step after the ACK may start in the router's task (the guards are
        the engine's own, and may)."""
        steps = [*self.steps, *(step for d in self.destinations for step in d.steps)]
        return all(step.inline for step in steps)

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
        guard(self.guards, routed)
        decisions = routed.decisions[first:]
        if routed.dropped or routed.refusal is not None:
            return Routing([], decisions, dropped=True)
        payload = routed.output() if routed.changed else None
        message_type = routed.header.type_and_trigger
        deliveries: list[tuple[str, bytes | None]] = []
        for destination in self.destinations:
            if not destination.accept.matches(message_type):
                continue
            if not destination.steps or routed.failed:
                deliveries.append((destination.name, payload))
                continue
            copy = routed.for_destination()
            await run_steps(destination.steps, copy, destination.name)
            guard(self.guards, copy, destination.name)
            decisions.extend(copy.decisions)
            if copy.dropped or copy.refusal is not None:
                continue
            deliveries.append((destination.name, copy.output() if copy.changed else payload))
        if not deliveries:
            return Routing([], [*decisions, NO_DESTINATION], dropped=True)
        return Routing(deliveries, decisions, dropped=False)
