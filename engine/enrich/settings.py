"""The `[routes.enrichment]` table: which events get the INS and how hard to try."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_EVENTS = ("A01", "A04", "A05", "A28", "A31")


@dataclass(frozen=True)
class EnrichSettings:
    events: list[str] = field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        metadata={"doc": "trigger events enriched (add A08 for non-French feeds)"},
    )
    search_provisional: bool = field(
        default=False,
        metadata={"doc": "search INSi for PROV identities too (INS recorded, never sent)"},
    )
    retry_window_s: float = field(
        default=30.0, metadata={"doc": "how long INSi technical errors are retried, seconds"}
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if any(event in ("A40", "A47") for event in self.events):
            found.append(("events", "events other than A40/A47 (they always pass unchanged)"))
        if self.retry_window_s < 0:
            found.append(("retry_window_s", "a number of seconds >= 0"))
        return found
