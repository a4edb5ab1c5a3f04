"""Whether a route's and its destinations' `accept` lists can take what they are meant to.

These mistakes load and run, and fail only on traffic: a pattern that names no `TYPE^EVENT`
(`"ADT"`: MSH-9 is read as `ADT^A28`, so every ADT is refused with AR, ERR 201, or never
reaches the destination), a list that takes none of the events a step of the list's route
or destination acts on (the step a kind declares `handles` for never runs), and a
destination's `TYPE^EVENT` that its route refuses. `check` prints these as warnings, each
with the pattern that would do.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.config.settings import RouteSettings, StepSettings
from engine.hl7.patterns import Patterns
from engine.steps.registry import registry

WILDCARDS = frozenset("*?[")


def accept_warnings(route: RouteSettings) -> list[tuple[str, str]]:
    """(key in the route, what is wrong and the pattern that would do), for the route's
    `accept` and each destination's."""
    refused = "every {} message is refused (AR, ERR 201)"
    found = _warnings(route.accept, route.step_list(), "accept", refused)
    # A route accept naming no event already explains what it refuses: not said again.
    route_names_events = not any(map(_names_no_event, route.accept))
    taken = Patterns(route.accept)
    for number, destination in enumerate(route.destinations):
        key = f"destinations[{number}].accept"
        unsent = "no {} message reaches this destination"
        found += _warnings(destination.accept, destination.steps, key, unsent)
        lost = [p for p in destination.accept if _one_event(p) and not taken.matches(p)]
        if lost and route_names_events:
            quoted = ", ".join(f'"{pattern}"' for pattern in lost)
            found.append(
                (
                    key,
                    f"the route refuses {', '.join(lost)} (AR) before any destination: "
                    f"add {quoted} to the route's accept",
                )
            )
    return found


def _warnings(
    patterns: Sequence[str], steps: Sequence[StepSettings], key: str, consequence: str
) -> list[tuple[str, str]]:
    """A list's patterns that name no TYPE^EVENT (`consequence` says what then happens to
    that type's messages); failing that, the steps it starves."""
    found = [
        (
            f"{key}[{index}]",
            f'"{pattern}" matches no TYPE^EVENT: MSH-9 is read as {_type(pattern)}^<event>, '
            f'so {consequence.format(_type(pattern))}; "{_type(pattern)}^*" takes them all',
        )
        for index, pattern in enumerate(patterns)
        if _names_no_event(pattern)
    ]
    if found:
        return found
    accept = Patterns(patterns)
    kinds = registry().kinds
    for step in steps:
        kind = kinds.get(step.kind)
        handled = list(kind.handles(step.settings)) if kind and kind.handles else []
        if handled and not any(accept.matches(event) for event in handled):
            types = sorted(set(map(_type, handled)))
            wanted = ", ".join(f'"{message_type}^*"' for message_type in types)
            found.append(
                (
                    key,
                    f"takes none of the events step {step.name} acts on "
                    f"({', '.join(handled)}): it never runs; add {wanted}",
                )
            )
    return found


def _names_no_event(pattern: str) -> bool:
    """`ADT` or `ADT^`: no `^` followed by an event, and no wildcard that would stand in."""
    _, caret, event = pattern.partition("^")
    return not event if caret else not WILDCARDS.intersection(pattern)


def _one_event(pattern: str) -> bool:
    """`ADT^A31`: one TYPE^EVENT, no wildcard (whether the route takes it can be said)."""
    return not WILDCARDS.intersection(pattern) and not _names_no_event(pattern)


def _type(text: str) -> str:
    """The MSH-9.1 part of a pattern or of a TYPE^EVENT."""
    return text.partition("^")[0]
