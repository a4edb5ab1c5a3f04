"""The `validate` step kind: HL7 structure validation with hl7apy, optionally PAM FR rules.

A message that fails gets an `invalid` decision whose detail is the ERR code and location
(`101 PID^1^5`), and then what `on_failure` says: dropped (kept, visible, delivered
nowhere), refused with AE or AR and that ERR before the ACK, or passed on with the failure
recorded. It decides at once without changing the message, so it may run before the ACK;
it costs hl7apy's tens of milliseconds per message (see `engine.hl7.structure`).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as setting

from engine.hl7.pam_fr import pam_fr_problem
from engine.hl7.structure import VERSIONS, first_problem
from engine.steps import outcomes
from engine.steps.kind import StepKind, from_settings
from engine.steps.pipeline import RoutedMessage, StepResult

VALID = StepResult("valid")
PROFILES = ("", "pam_fr")
ON_FAILURE = ("drop", "pass", *outcomes.REFUSALS)


@dataclass(frozen=True)
class ValidateSettings:
    version: str = setting(
        default="2.5", metadata={"doc": "the HL7 version checked, whatever MSH-12 says"}
    )
    profile: str = setting(
        default="", metadata={"doc": '"pam_fr" adds IHE PAM France 2.11 rules (routes guide)'}
    )
    on_failure: str = setting(
        default="drop",
        metadata={"doc": '"drop", "pass" (record only), or before the ACK "AE" or "AR"'},
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.version not in VERSIONS:
            found.append(("version", f"one of {', '.join(sorted(VERSIONS))}"))
        if self.profile not in PROFILES:
            found.append(("profile", '"pam_fr" or absent'))
        elif self.profile == "pam_fr" and self.version != "2.5":
            found.append(("version", '"2.5" with profile = "pam_fr"'))
        if self.on_failure not in ON_FAILURE:
            found.append(("on_failure", '"drop", "pass", "AE" or "AR"'))
        return found

    def placement_problems(self, before_ack: bool) -> list[tuple[str, str]]:
        return outcomes.placement_problems("on_failure", self.on_failure, before_ack)


class Validate:
    def __init__(self, settings: ValidateSettings) -> None:
        self._version = settings.version
        self._pam_fr = settings.profile == "pam_fr"
        self._on_failure = settings.on_failure

    def __call__(self, routed: RoutedMessage) -> StepResult:
        error = first_problem(routed.message, self._version)
        if error is None and self._pam_fr:
            error = pam_fr_problem(routed.message, routed.header)
        if error is None:
            return VALID
        return outcomes.stopped(self._on_failure, "invalid", error)


VALIDATE = StepKind(
    name="validate",
    inline=True,
    settings=ValidateSettings,
    build=from_settings(Validate),
    doc="checks HL7 structure with hl7apy (and PAM FR rules); drop, pass, or AE/AR",
    before_ack=True,
)
