"""Route steps: plain async callables folded over a message by a short runner.

A step reads and may rewrite the message's lazy view; it records what it did in
`annotations` (for the store) and sets `changed` when the bytes to forward differ from the
bytes received. Steps never see the network listener or the delivery queues.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from engine.hl7.header import Header
from engine.hl7.message import Message


@dataclass(slots=True)
class RoutedMessage:
    """A stored message on its way from the inbox to the outboxes."""

    message_id: int
    route: str
    raw: bytes
    codec: str  # the codec the text was decoded with; the output is re-encoded with it
    message: Message
    header: Header
    changed: bool = False
    annotations: dict[str, Any] = field(default_factory=dict)

    def output(self) -> bytes:
        """The bytes to forward: as received unless a step changed the message."""
        if not self.changed:
            return self.raw
        return self.message.to_text().encode(self.codec)


Step = Callable[[RoutedMessage], Awaitable[None]]


async def run_steps(steps: Sequence[Step], routed: RoutedMessage) -> RoutedMessage:
    """Run a route's steps in order; every line they log (and the work they start, such as
    an INSi call and its retries) carries the message's route and control id."""
    with structlog.contextvars.bound_contextvars(
        route=routed.route, control_id=routed.header.control_id
    ):
        for step in steps:
            await step(routed)
    return routed
