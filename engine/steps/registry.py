"""Every step kind and outbound guard the engine knows, as the engine runs them.

Each is declared by an entry point of the installed distributions, the engine's own kinds
as any other (`engine.config.kinds`, which loads them the first time they are asked for:
importing this module imports no kind). A kind that fails to load is left out and
remembered, so that a configuration naming it is told why rather than "unknown kind".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.base.metrics import DecisionCounter, EngineMetrics
from engine.config.kinds import GUARD_KINDS, STEP_KINDS, installed
from engine.steps.kind import GuardKind, StepKind
from engine.store.extension import StoreExtension


@dataclass(frozen=True)
class Registry:
    """The kinds by name, where each comes from, the installed ones that failed, the guards."""

    kinds: Mapping[str, StepKind]
    origins: Mapping[str, str]  # kind name → "built-in" or the distribution that adds it
    broken: Mapping[str, str]  # entry point name → why it did not load
    guards: tuple[GuardKind, ...]

    def store_extensions(self) -> list[StoreExtension]:
        """The tables every store opened by the engine carries."""
        kinds = [kind.store_extension for kind in self.kinds.values()]
        guards = [guard.store_extension for guard in self.guards]
        return [extension for extension in [*kinds, *guards] if extension is not None]

    def decision_counters(self) -> list[DecisionCounter]:
        """The counters the kinds add to `/metrics`."""
        kinds = [kind.counters for kind in self.kinds.values()]
        guards = [guard.counters for guard in self.guards]
        return [counter for counters in [*kinds, *guards] for counter in counters]

    def metric_components(self) -> dict[str, Callable[[EngineMetrics], Any]]:
        """The families of their own the kinds add to `/metrics`, by kind."""
        return {kind.name: kind.metrics for kind in self.kinds.values() if kind.metrics}

    def outcomes(self) -> list[str]:
        """The outcome codes the kinds' decisions carry, sorted."""
        return sorted({outcome for kind in self.kinds.values() for outcome in kind.outcomes})

    def meanings(self) -> dict[str, str]:
        """What each outcome and detail code of the kinds and guards means."""
        declared = [kind.meanings for kind in self.kinds.values()]
        declared += [guard.meanings for guard in self.guards]
        return {code: text for meanings in declared for code, text in meanings.items()}

    def attention(self) -> frozenset[str]:
        """The outcomes that ask a person to act, whatever the kind."""
        return frozenset(outcome for kind in self.kinds.values() for outcome in kind.attention)


def registry() -> Registry:
    """The installed step kinds and guards (loaded once per process)."""
    steps = installed(STEP_KINDS)
    return Registry(
        steps.kinds, steps.origins, steps.broken, (*installed(GUARD_KINDS).kinds.values(),)
    )
