"""The step, guard and destination kinds installed packages declare, loaded when first asked.

Every kind, the engine's own included, is declared by an entry point: `ins_engine.steps`
for route steps (`examples/phone-format` shows a third-party one), `ins_engine.guards` for
outbound guards, which only the engine's own distribution may declare (what every message
must satisfy is not a plug-in's), `ins_engine.destinations` for kinds of destination beside
`mllp` and `file` (the engine's `fhir`). Importing this module imports no kind: the configuration
loader asks for them when it reads a file. A kind that fails to load is left out and
remembered, so that a configuration naming it is told why rather than "unknown kind".

The configuration reads of a kind only what `Declared` names; `engine.steps.kind` defines
the kinds themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, runtime_checkable

from engine.base.logs import get_logger

STEP_KINDS = "ins_engine.steps"
GUARD_KINDS = "ins_engine.guards"
DESTINATION_KINDS = "ins_engine.destinations"
ENGINE_DISTRIBUTION = "ins-engine"
BUILT_IN = "built-in"

log = get_logger("engine.steps")


@runtime_checkable
class Declared(Protocol):
    """What any kind has: a name, a settings dataclass, a factory and a line of doc."""

    name: str
    settings: type
    build: Any
    doc: str


@dataclass(frozen=True)
class Installed:
    """The kinds of one group by name, where each comes from, and those that failed."""

    group: str
    kinds: Mapping[str, Any]
    origins: Mapping[str, str]  # kind name → "built-in" or the distribution that adds it
    broken: Mapping[str, str]  # entry point name → why it did not load

    def unknown(self, name: str) -> str:
        """What to tell a configuration naming a kind that is not here."""
        if name in self.broken:
            return f"a kind that loads (installed {name} failed: {self.broken[name]})"
        return (
            f"one of {', '.join(sorted(self.kinds))}, or a kind an installed package "
            f"declares in the {self.group} entry point group"
        )


@functools.cache
def installed(group: str) -> Installed:
    """The engine's own kinds first (in the order it declares them), then the others."""
    kinds: dict[str, Any] = {}
    origins: dict[str, str] = {}
    broken: dict[str, str] = {}
    for entry in sorted(entry_points(group=group), key=lambda e: _origin(e) != BUILT_IN):
        origin = _origin(entry)
        if group == GUARD_KINDS and origin != BUILT_IN:
            broken[entry.name] = "an outbound guard from another package than the engine"
            log.warning("guard kind refused: not from the engine's distribution", step=entry.name)
            continue
        try:
            kind = entry.load()
        except Exception as error:  # a broken plugin must not stop the engine's other routes
            broken[entry.name] = type(error).__name__
            log.warning("step kind failed to load", step=entry.name, error=type(error).__name__)
            continue
        if not isinstance(kind, Declared) or kind.name != entry.name or entry.name in kinds:
            broken[entry.name] = "not a StepKind of that name, or a name already taken"
            log.warning("step kind refused", step=entry.name)
            continue
        kinds[kind.name] = kind
        origins[kind.name] = origin
    return Installed(group, kinds, origins, broken)


def _origin(entry: EntryPoint) -> str:
    package = entry.dist.name if entry.dist is not None else entry.value
    return BUILT_IN if package == ENGINE_DISTRIBUTION else package
