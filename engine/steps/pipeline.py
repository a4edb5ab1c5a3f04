"""Route steps: plain callables over a message, folded by a short runner.

A step reads and may rewrite the message's lazy view (setting `changed` when the bytes to
forward differ from the bytes received) and returns a `StepResult`: its outcome, and whether
the message goes on, is dropped or (before the ACK) refused. A synchronous step returns the
result; a step that waits (an INSi lookup) returns an awaitable of it. The runner stamps each
result with the step's name and kind into a `Decision`. Steps never see the listener, the
store or the delivery queues.

A step that raises does not lose or hold back the message: the runner records an `error`
decision, runs no further step, and the message is forwarded as the steps before it left
it (what a failing step half-wrote is undone; what an earlier step removed, such as an
unverified INS, stays removed).

Outbound guards run after all steps, on whatever is about to leave: they are not steps a
route lists but kinds the engine applies to every route (`engine.steps.kind.GuardKind`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from engine.base.logs import get_logger
from engine.hl7.ack import Refusal
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.store.decision import ROUTE, Decision

log = get_logger("engine.steps.pipeline")


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a step decided. `outcome` and `detail` are short codes (never message content);
    `payload` is the step kind's own record for its store extension (may hold patient data).
    `drop`: the message goes nowhere (it stays in the store, visible as dropped).
    `refusal`: before the ACK, the sender gets this AE/AR and nothing is stored."""

    outcome: str
    detail: str = ""
    payload: Any = field(default=None, repr=False)
    drop: bool = False
    refusal: Refusal | None = None


@dataclass(slots=True)
class RoutedMessage:
    """A message on its way through a route's steps."""

    message_id: int
    route: str
    raw: bytes
    codec: str  # the codec the text was decoded with; the output is re-encoded with it
    message: Message
    header: Header
    changed: bool = False
    decisions: list[Decision] = field(default_factory=list)
    dropped: bool = False
    refusal: Refusal | None = None
    failed: bool = False  # a step raised: no further step runs

    def output(self) -> bytes:
        """The bytes to forward: as received unless a step changed the message."""
        if not self.changed:
            return self.raw
        return self.message.to_text().encode(self.codec)

    @property
    def halted(self) -> bool:
        """No further step runs: dropped, refused, or a step failed."""
        return self.dropped or self.failed or self.refusal is not None

    def for_destination(self) -> RoutedMessage:
        """A copy for one destination's own steps: their changes and decisions stay there."""
        return RoutedMessage(
            self.message_id,
            self.route,
            self.raw,
            self.codec,
            Message(list(self.message.texts), self.message.separators),
            self.header,
            self.changed,
        )


Step = Callable[[RoutedMessage], StepResult | Awaitable[StepResult]]
Guard = Callable[[RoutedMessage], StepResult | None]
"""An outbound guard: synchronous, it may rewrite what is about to leave; a result only when
it has something to record."""


@dataclass(frozen=True, slots=True)
class BoundStep:
    """A step as a route runs it: its name in the route, its kind, the callable, and
    whether its kind lets it start in the router's task (`StepKind.inline`)."""

    name: str
    kind: str
    run: Step
    inline: bool = False


async def run_steps(
    steps: Sequence[BoundStep], routed: RoutedMessage, destination: str = ROUTE
) -> None:
    """Run `steps` in order until one halts the message; decisions go to `routed`. Every
    line the steps log (and the work they start, such as an INSi call and its retries)
    carries the message's route and control id."""
    if not steps:  # nothing to run, nothing to bind
        return
    # Bound, then reset to what they were (a token each: no read of the whole context).
    bound = structlog.contextvars.bind_contextvars(
        route=routed.route, control_id=routed.header.control_id
    )
    try:
        for step in steps:
            texts, changed = list(routed.message.texts), routed.changed
            try:
                result = step.run(routed)
                if not isinstance(result, StepResult):
                    result = await result
            except Exception as error:  # forward rather than hold the queue
                routed.message = Message(texts, routed.message.separators)
                routed.changed = changed
                _failed(step.name, step.kind, routed, destination, error)
                return
            if _record(step.name, step.kind, routed, destination, result):
                return
    finally:
        structlog.contextvars.reset_contextvars(**bound)


@dataclass(frozen=True, slots=True)
class BoundGuard:
    """An outbound guard as a route runs it: its kind's name, the callable."""

    kind: str
    run: Guard


def guard(guards: Sequence[BoundGuard], routed: RoutedMessage, destination: str = ROUTE) -> None:
    """Run the outbound guards over what is about to leave for `destination` (or, for
    ROUTE, every destination without steps of its own). A guard that raises withholds the
    message: it goes nowhere rather than unchecked (it stays in the store, dropped, with
    the guard's `error` decision). A message a step dropped or refused leaves nowhere: there is
    nothing to guard."""
    if routed.dropped or routed.refusal is not None:
        return
    for bound in guards:
        try:
            result = bound.run(routed)
        except Exception as error:
            log.error(
                "outbound guard failed, message withheld",
                route=routed.route,
                destination=destination or None,
                step=bound.kind,
                control_id=routed.header.control_id,
                exc_info=error,
            )
            routed.decisions.append(
                Decision(bound.kind, bound.kind, "error", type(error).__name__, destination)
            )
            routed.dropped = True
            return
        if result is not None:
            _record(bound.kind, bound.kind, routed, destination, result)


def screen(steps: Sequence[BoundStep], routed: RoutedMessage) -> None:
    """Run steps placed before the ACK: synchronous ones only, so the ACK never waits on I/O."""
    for step in steps:
        try:
            result = step.run(routed)
            if not isinstance(result, StepResult):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(f"step kind {step.kind} returned an awaitable before the ACK")
        except Exception as error:  # the message is stored and routed as if it had passed
            _failed(step.name, step.kind, routed, ROUTE, error)
            return
        if _record(step.name, step.kind, routed, ROUTE, result):
            return


def _record(
    name: str, kind: str, routed: RoutedMessage, destination: str, result: StepResult
) -> bool:
    """Keep the decision; True when the message goes no further."""
    routed.decisions.append(
        Decision(name, kind, result.outcome, result.detail, destination, result.payload)
    )
    if result.refusal is not None:
        routed.refusal = result.refusal
    elif result.drop:
        routed.dropped = True
    return routed.halted


def _failed(
    name: str, kind: str, routed: RoutedMessage, destination: str, error: Exception
) -> None:
    log.error(
        "route step failed, message forwarded as the steps before it left it",
        route=routed.route,
        destination=destination or None,
        step=name,
        control_id=routed.header.control_id,
        exc_info=error,
    )
    routed.failed = True
    routed.decisions.append(Decision(name, kind, "error", type(error).__name__, destination))
