"""The `[routes.enrichment]` table of a route: which events to enrich and how hard to try.

Field names are the TOML keys; the config loader builds this dataclass and reports
`problems()`. `enrich = false` on the route removes the step altogether.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_EVENTS = ("A01", "A04", "A05", "A28", "A31")
# INS life-cycle events carry identity-change semantics: never enriched, whatever the route says.
LIFECYCLE_EVENTS = frozenset({"A40", "A47"})
_EVENT = re.compile(r"[A-Z][0-9A-Z]{2}")


@dataclass(frozen=True)
class EnrichSettings:
    """How a route enriches PID with the INS; see `problems()` for the rules."""

    events: list[str] = field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        metadata={
            "doc": "trigger events (MSH-9.2) to enrich; add A08 for non-French feeds; "
            "A40/A47 always pass through"
        },
    )
    search_provisional: bool = field(
        default=False,
        metadata={
            "doc": "call INSi for PROV or status-less identities too; the INS is then only "
            "recorded as récupérée, never written into the message"
        },
    )
    require_document: bool = field(
        default=False,
        metadata={
            "doc": "enrich a VALI identity only when ZFD-7 names the identity document checked"
        },
    )
    verify_only: bool = field(
        default=False,
        metadata={
            "doc": "verify the INS a message carries (keep, canonicalise or remove) but never "
            "search for a missing one: for installations where only the identity repository "
            "may retrieve INS"
        },
    )
    retry_window_s: float = field(
        default=30.0,
        metadata={
            "doc": "how long INSi technical errors are retried for one message before it goes "
            "on without INS, seconds"
        },
    )
    retry_backoff_s: float = field(
        default=1.0,
        metadata={
            "doc": "first wait between two searches after a technical error, seconds (doubles)"
        },
    )
    retry_backoff_max_s: float = field(
        default=8.0,
        metadata={"doc": "longest wait between two searches after a technical error, seconds"},
    )

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field checks: (key, what is expected) for each inconsistency."""
        found: list[tuple[str, str]] = []
        if not self.events:
            found.append(("events", "at least one trigger event (or enrich = false on the route)"))
        if any(not _EVENT.fullmatch(event) for event in self.events):
            found.append(("events", "trigger event codes such as A01, A28"))
        if LIFECYCLE_EVENTS.intersection(self.events):
            found.append(("events", "no A40/A47: INS life-cycle messages always pass through"))
        if self.verify_only and self.search_provisional:
            found.append(
                ("verify_only", "not with search_provisional = true: verify_only never searches")
            )
        for key, ok, expected in (
            ("retry_window_s", self.retry_window_s >= 0, "a number of seconds >= 0"),
            ("retry_backoff_s", self.retry_backoff_s > 0, "a number of seconds > 0"),
            (
                "retry_backoff_max_s",
                self.retry_backoff_max_s >= self.retry_backoff_s,
                "a number of seconds >= retry_backoff_s",
            ),
        ):
            if not ok:
                found.append((key, expected))
        return found
