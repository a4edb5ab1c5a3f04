"""Every step kind the engine knows: the built-in ones and those installed packages declare.

A package declares a kind with an entry point in the `ins_engine.steps` group, whose object
is a `StepKind` named like the entry point. A kind that fails to load is left out and
remembered, so that a configuration naming it is told why rather than "unknown kind".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points

from engine.base.logs import get_logger
from engine.enrich.guard import INS_GUARD
from engine.enrich.kind import INS_ENRICH
from engine.steps.fields import COPY, SET
from engine.steps.filter import FILTER
from engine.steps.kind import GuardKind, StepKind
from engine.steps.mapping import MAP
from engine.steps.validate import VALIDATE
from engine.store.extension import StoreExtension

ENTRY_POINT_GROUP = "ins_engine.steps"
BUILTIN: tuple[StepKind, ...] = (INS_ENRICH, FILTER, VALIDATE, SET, COPY, MAP)
# Outbound guards are built in only: what every message must satisfy is not a plug-in's.
GUARDS: tuple[GuardKind, ...] = (INS_GUARD,)

log = get_logger("engine.steps")


@dataclass(frozen=True)
class Registry:
    """The kinds by name, where each comes from, and the installed ones that failed."""

    kinds: Mapping[str, StepKind]
    origins: Mapping[str, str]  # kind name → "built-in" or the distribution that adds it
    broken: Mapping[str, str]  # entry point name → why it did not load
    guards: tuple[GuardKind, ...] = GUARDS

    def store_extensions(self) -> list[StoreExtension]:
        """The tables every store opened by the engine carries."""
        kinds = [kind.store_extension for kind in self.kinds.values()]
        guards = [guard.store_extension for guard in self.guards]
        return [extension for extension in [*kinds, *guards] if extension is not None]

    def unknown(self, name: str) -> str:
        """What to tell a configuration naming a kind that is not here."""
        if name in self.broken:
            return f"a kind that loads (installed {name} failed: {self.broken[name]})"
        return (
            f"one of {', '.join(sorted(self.kinds))}, or a kind an installed package "
            f"declares in the {ENTRY_POINT_GROUP} entry point group"
        )


@functools.cache
def registry() -> Registry:
    """Built-in kinds, then the installed ones (read once per process)."""
    kinds = {kind.name: kind for kind in BUILTIN}
    origins = dict.fromkeys(kinds, "built-in")
    broken: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        package = entry.dist.name if entry.dist is not None else entry.value
        try:
            kind = entry.load()
        except Exception as error:  # a broken plugin must not stop the engine's other routes
            broken[entry.name] = type(error).__name__
            log.warning("step kind failed to load", step=entry.name, error=type(error).__name__)
            continue
        if not isinstance(kind, StepKind) or kind.name != entry.name or entry.name in kinds:
            broken[entry.name] = "not a StepKind of that name, or a name already taken"
            log.warning("step kind refused", step=entry.name)
            continue
        kinds[kind.name] = kind
        origins[kind.name] = package
    return Registry(kinds, origins, broken)
