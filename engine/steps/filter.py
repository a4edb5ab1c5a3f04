"""The `filter` step kind: keep or stop messages by type, sender, or the value of a field.

A message matches when it matches every criterion given: `types` (MSH-9 `TYPE^EVENT`
patterns, as a route's `accept`), `sending_application` (MSH-3) and `sending_facility`
(MSH-4) patterns, and `values`, patterns of the (unescaped) value of `field` (`""` matches
an empty or absent field). `action = "keep"` lets only matching messages go on;
`action = "drop"` stops them. A stopped message is dropped, or refused (AE/AR) when the
filter runs before the ACK. The filter decides at once without changing the message, so it
may be placed before the ACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as setting

from engine.hl7.ack import AckError, ErrorCode
from engine.hl7.escape import unescape
from engine.hl7.path import FieldPath
from engine.hl7.patterns import Patterns
from engine.steps import outcomes
from engine.steps.fields import path_problems
from engine.steps.kind import StepKind, from_settings
from engine.steps.pipeline import RoutedMessage, StepResult

CRITERIA = ("types", "sending_application", "sending_facility", "field")
KEPT = StepResult("kept")


@dataclass(frozen=True)
class FilterSettings:
    action: str = setting(
        default="keep",
        metadata={"doc": "keep: only matching messages go on; drop: matching messages stop"},
    )
    types: list[str] = setting(
        default_factory=list, metadata={"doc": 'MSH-9 patterns such as "ADT^A08" or "ORU^*"'}
    )
    sending_application: list[str] = setting(
        default_factory=list, metadata={"doc": "MSH-3 patterns"}
    )
    sending_facility: list[str] = setting(default_factory=list, metadata={"doc": "MSH-4 patterns"})
    field: str = setting(default="", metadata={"doc": "a field whose value `values` tests"})
    values: list[str] = setting(
        default_factory=list, metadata={"doc": 'patterns of that value ("" = empty)'}
    )
    on_stop: str = setting(
        default="drop",
        metadata={"doc": 'a stopped message: "drop", or before the ACK "AE" or "AR"'},
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.action not in ("keep", "drop"):
            found.append(("action", '"keep" or "drop"'))
        if not any(getattr(self, criterion) for criterion in CRITERIA):
            found.append(("types", f"at least one criterion: {', '.join(CRITERIA)}"))
        if bool(self.field) != bool(self.values):
            found.append(("values", "patterns of the field's value, given with `field`"))
        if self.field:
            found += path_problems(field=self.field)
        if self.on_stop not in ("drop", *outcomes.REFUSALS):
            found.append(("on_stop", '"drop", "AE" or "AR"'))
        return found

    def placement_problems(self, before_ack: bool) -> list[tuple[str, str]]:
        return outcomes.placement_problems("on_stop", self.on_stop, before_ack)


class Filter:
    def __init__(self, settings: FilterSettings) -> None:
        self._keep = settings.action == "keep"
        self._on_stop = settings.on_stop
        self._criteria: list[tuple[str, Patterns]] = [
            (criterion, Patterns(getattr(settings, criterion)))
            for criterion in ("types", "sending_application", "sending_facility")
            if getattr(settings, criterion)
        ]
        self._field = FieldPath.parse(settings.field) if settings.field else None
        self._values = Patterns(settings.values)

    def __call__(self, routed: RoutedMessage) -> StepResult:
        mismatch = self._mismatch(routed)
        if (mismatch is None) == self._keep:
            return KEPT
        return outcomes.stopped(
            self._on_stop,
            "refused" if self._on_stop in outcomes.REFUSALS else "dropped",
            self._error(mismatch),
        )

    def _mismatch(self, routed: RoutedMessage) -> str | None:
        """The first criterion the message does not match, or None when it matches all."""
        header = routed.header
        values = {
            "types": header.type_and_trigger,
            "sending_application": header.sending_application,
            "sending_facility": header.sending_facility,
        }
        for criterion, patterns in self._criteria:
            if not patterns.matches(values[criterion]):
                return criterion
        if self._field is not None:
            value = self._field.read(routed.message) or ""
            if not self._values.matches(unescape(value, routed.message.separators)):
                return "field"
        return None

    def _error(self, mismatch: str | None) -> AckError:
        """Where the decisive value is: the criterion a kept message lacked, or, for a
        message `drop` stopped, its first criterion."""
        criterion = mismatch or (self._criteria[0][0] if self._criteria else "field")
        if criterion == "types":
            return AckError(ErrorCode.UNSUPPORTED_MESSAGE_TYPE, "MSH^1^9", "message type filtered")
        if criterion == "field":
            assert self._field is not None
            return AckError(
                ErrorCode.TABLE_VALUE_NOT_FOUND,
                self._field.location(),
                f"{self._field} value filtered",
            )
        number, name = (3, "application") if criterion == "sending_application" else (4, "facility")
        return AckError(
            ErrorCode.APPLICATION_INTERNAL_ERROR, f"MSH^1^{number}", f"sending {name} filtered"
        )


FILTER = StepKind(
    name="filter",
    inline=True,
    settings=FilterSettings,
    build=from_settings(Filter),
    doc="keeps or stops messages by MSH-9, sending application or facility, or a field's value",
    before_ack=True,
)
