"""Every code the INS plug-in records is explained: each outcome and each reason of the
outbound guard has its sentence, which the console shows and the docs' table lists."""

from __future__ import annotations

from engine.enrich import guard_rules
from engine.enrich.outcome import Outcome
from engine.steps.registry import registry


def test_every_outcome_and_guard_reason_has_a_meaning() -> None:
    meanings = registry().meanings()
    reasons = {
        value
        for name, value in vars(guard_rules).items()
        if name.isupper() and isinstance(value, str) and value.islower()
    }
    assert reasons, "the guard's reasons are its lower-case string constants"
    missing = sorted({*Outcome, *reasons} - set(meanings))
    assert missing == []
