"""What a destination kind is, beside the built-in `mllp` and `file`: a table and a sender.

A package adds a kind of destination (the engine's own `fhir` is one) by declaring a
`DestinationKind` in the `ins_engine.destinations` entry point group. Its settings
dataclass is read from the destination's table named after the kind
(`[routes.destinations.fhir]`), with the same checks and errors as every section; `build`
opens the sender a lane delivers with. The delivery worker, the queue, its order, retries
and parking are the same for every kind: a kind only says what became of one entry
(`engine.delivery.destination`). A kind may also say what the machine lacks before start
(`preflight`: a secret not in the environment) and what `check` should warn about.

A kind whose destination is not fed HL7 bytes (a FHIR server is written resources) can say
what it would write, so that route tests and offline commands show it without its server:
`preview` opens a dry run of the destination (a target that holds nothing yet, fed messages
in order), `suffix` names the route test file holding the expected writes
(`out.<destination><suffix>`), and `differences` compares that file with the writes made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from engine.config.kinds import DESTINATION_KINDS, installed
from engine.delivery.destination import Sender
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.config.settings import DestinationSettings, RouteSettings


# One write a destination makes, as JSON: {"method": "PUT", "url": "...", "resource": {...}}.
Write = dict[str, Any]


class NotWritten(EngineError):
    """The destination would not take this message (its sender would park it); the text is
    the sender's own reason, safe to show."""


class DryRun(Protocol):
    async def writes(self, payload: bytes) -> list[Write]:
        """What the destination writes for one outbound message; raises `NotWritten`."""
        ...


@dataclass(frozen=True)
class DestinationKind:
    name: str  # the key of its table in a destination: `fhir = { ... }`
    settings: type  # the dataclass that table is read into
    build: Callable[[RouteSettings, DestinationSettings], Sender]
    doc: str  # one line for `check --keys` and the reference
    target: Callable[[Any], str]  # where it sends, for logs and the console (no secret)
    uses_tls: bool = False  # whether the destination's `tls` table applies to it
    # Before start: (key in the kind's table, what to fix) for what the machine lacks.
    preflight: Callable[[Any], Iterable[tuple[str, str]]] | None = None
    # `check`'s warnings about a valid destination: (key in the destination, text).
    warnings: Callable[[DestinationSettings], Iterable[tuple[str, str]]] | None = None
    # A dry run of the destination, for route tests and offline commands (see above).
    preview: Callable[[RouteSettings, DestinationSettings], DryRun] | None = None
    suffix: str = ".json"  # the route test file of the expected writes: out.<name><suffix>
    # The failures of a comparison: the expected file's bytes, the writes made.
    differences: Callable[[bytes, list[Write]], list[str]] | None = None


def kind_of(settings: DestinationSettings) -> DestinationKind | None:
    """The installed kind whose table the destination has, or None for `mllp` and `file`."""
    for name in settings.kind_tables:
        if settings.kind_tables[name] is not None:
            kind: DestinationKind = installed(DESTINATION_KINDS).kinds[name]
            return kind
    return None
