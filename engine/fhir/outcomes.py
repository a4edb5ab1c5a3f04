"""What a FHIR answer means for the queue: delivered, retried later, or parked for a person.

200/201 (204 for a delete) are done. 412 means several Patient resources answer the same
local identifier: an identity problem on the server that no retry will solve, so the entry
is parked. 400/422 is content the server refuses: parked, with what its OperationOutcome
says. 408, 429, 5xx, a timeout or no connection are transient: retried with the
destination's back-off. Any other answer (401/403 after a fresh token, 404, 405, 409...)
says the destination is misconfigured or busy: retried, so the lane stays visibly stuck
rather than dropping patients.

The text kept of an OperationOutcome is its issues' severities, codes and element paths:
the server's free-text `diagnostics` may quote the resource (a name, a birth date), so it
never reaches the store, a log line or the console.
"""

from __future__ import annotations

import re
from typing import Any

from engine.delivery.destination import Outcome, Result
from engine.fhir.server import Answer

DONE = frozenset({200, 201, 204})
PARKED = frozenset({400, 412, 422})
_PATH = re.compile(r"[^A-Za-z0-9_.\[\]-]")
_ARGUMENTS = re.compile(r"\(.*?\)")  # `where(value='...')` may quote a value
MAX_ISSUES = 5


def judge(answer: Answer, what: str) -> Result | None:
    """None when the interaction `what` (`update`, `search`...) succeeded, else its Result."""
    status = answer.status
    if status in DONE:
        return None
    if status == 412:
        return Result(
            Outcome.PARK,
            ack_code="412",
            error=f"{what}: several Patient resources match the local identifier (412): "
            "an identity problem to resolve on the FHIR server",
        )
    summary = outcome_summary(answer.body)
    if status in PARKED:
        return Result(
            Outcome.PARK, ack_code=str(status), error=f"{what} refused ({status}){summary}"
        )
    return Result(Outcome.RETRY, ack_code=str(status), error=f"{what}: answered {status}{summary}")


def outcome_summary(body: Any) -> str:
    """`: error invalid Patient.birthDate; ...` from an OperationOutcome, values left out."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    issues = body.get("issue")
    if not isinstance(issues, list):
        return ""
    parts = []
    for issue in issues[:MAX_ISSUES]:
        if not isinstance(issue, dict):
            continue
        words = [_safe(issue.get("severity")), _safe(issue.get("code"))]
        codings = (issue.get("details") or {}).get("coding") or []
        words += [_safe(coding.get("code")) for coding in codings if isinstance(coding, dict)]
        paths = [*(issue.get("expression") or []), *(issue.get("location") or [])]
        words += [_safe(path) for path in paths[:3]]
        part = " ".join(word for word in words if word)
        if part:
            parts.append(part)
    more = f" (+{len(issues) - MAX_ISSUES} more)" if len(issues) > MAX_ISSUES else ""
    return (": " + "; ".join(parts) + more) if parts else ""


def _safe(value: Any) -> str:
    """A code or an element path: letters, digits and path punctuation only, kept short."""
    if not isinstance(value, str):
        return ""
    return _PATH.sub("", _ARGUMENTS.sub("", value))[:80]
