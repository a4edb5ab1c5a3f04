"""What a judging step (filter, validate) does with a message it does not let through.

`drop`: the message is kept in the store, visible as dropped, and delivered nowhere; the
sender got AA. `AE`/`AR` (steps before the ACK only): the sender gets that answer with an
ERR segment saying where and why, and nothing is stored. `pass` (validate only): the
failure is recorded and the message goes on.
"""

from __future__ import annotations

from engine.hl7.ack import AckError, Outcome, Refusal
from engine.steps.pipeline import StepResult

REFUSALS = {"AE": Outcome.ERROR, "AR": Outcome.REJECTED}


def placement_problems(key: str, value: str, before_ack: bool) -> list[tuple[str, str]]:
    """AE/AR reach a sender only from before the ACK."""
    if value in REFUSALS and not before_ack:
        return [(key, f'"drop" after the ACK ({value} needs before_ack = true)')]
    return []


def stopped(how: str, outcome: str, error: AckError) -> StepResult:
    """The result for a message stopped `how` (drop, AE or AR); its detail is the ERR code
    and location, never a value from the message."""
    detail = f"{error.code.value} {error.location}".strip()
    if how in REFUSALS:
        return StepResult(outcome, detail, refusal=Refusal(REFUSALS[how], error))
    return StepResult(outcome, detail, drop=how == "drop")
