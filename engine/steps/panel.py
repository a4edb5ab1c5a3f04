"""What a shared resource shows of itself to the engine's shell, which knows not what it is.

A kind's factory that opens a resource (the INS plug-in's INSi service) may offer a `Panel`
(`Resources.show`): `/readyz` then reports it under its name (without deciding readiness on
it), `/metrics` refreshes its gauges before each scrape, the console shows its banner on every
page and its card on the dashboard, with the mean duration of its external calls over the
last minute. Every text here is the engine's own, never a patient's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Pill:
    """A short highlighted word; `css`: its classes beside `pill` (ok, warn, bad, a name);
    `result`: its `data-result` attribute, when it is a count by result."""

    text: str
    css: str = ""
    result: str = ""


@dataclass(frozen=True)
class Row:
    """One line of a card: pills, or else a text (with the moment it speaks of, `at`), or else
    `empty` (muted), or else a dash."""

    term: str
    pills: tuple[Pill, ...] = ()
    text: str | None = None
    at: float | None = None
    empty: str = ""
    css: str = ""  # the value's classes


@dataclass(frozen=True)
class Card:
    """A resource's card on the console's dashboard."""

    title: str
    css: str
    rows: tuple[Row, ...]


class Panel(Protocol):
    def health(self) -> dict[str, Any]:
        """Its state for `/readyz` (codes, the engine's own texts, ISO times)."""
        ...

    def refresh_metrics(self) -> None:
        """Set the gauges that mirror its state; called before each scrape of `/metrics`."""
        ...

    def banner(self) -> str | None:
        """A warning for the top of every console page, or None."""
        ...

    def call_totals(self) -> tuple[float, float]:
        """(seconds, count) of the external calls it made so far."""
        ...

    def card(self, latency_ms: float | None) -> Card:
        """Its dashboard card; `latency_ms`: the mean call duration over the last minute."""
        ...
