"""The `[routes.ins_guard]` table of a route: how the outbound INS guard treats its messages.

The guard runs on every route, whether or not it enriches; these keys only tune it. The one
way to turn it off is `strip_unqualified_ins = false`, an explicit opt-out that the engine
logs at start and `ins-engine check` reports as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InsGuardSettings:
    """What the guard lets through; see `engine.enrich.guard_rules` for the invariant."""

    strip_unqualified_ins: bool = field(
        default=True,
        metadata={
            "doc": "remove every INS that breaks the INS invariant from every PID this route "
            "sends; false: forward INS as received, unchecked (raw pass-through: logged at "
            "start, a warning in check)"
        },
    )
    allow_test_ins: bool = field(
        default=False,
        metadata={
            "doc": "let INS under the test and demonstration OIDs (1.2.250.1.213.1.4.10, .11) "
            "leave in production messages (MSH-11 = P)"
        },
    )

    @property
    def opted_out(self) -> bool:
        return not self.strip_unqualified_ins


GUARD_OFF_WARNING = (
    "strip_unqualified_ins = false: the INS guard is off, INS leave this route as received, "
    "unchecked"
)
