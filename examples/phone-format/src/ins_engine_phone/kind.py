"""The `phone_e164` step kind: French phone numbers in international form.

A patient's numbers (PID-13, XTN) often arrive as `06 12 34 56 78` or `01.23.45.67.89`;
a receiver that dials or texts wants `+33612345678`. The step rewrites XTN-1 of every
repetition of the field that holds a ten-digit French national number (spaces, dots and
dashes allowed) and leaves any other value as it is.

Everything a kind needs is here: a settings dataclass (its fields are the TOML keys of the
step's table, `metadata["doc"]` their meaning in `ins-engine check --keys`, `problems()` the
errors `check` reports), a step (a callable taking the message, returning a `StepResult`),
its factory (`from_settings` when the step needs nothing but its settings; an async
function of the settings and a `StepContext` otherwise), and the `StepKind` the entry point
names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as setting  # `field` is also a key of these settings

from engine.hl7.escape import escape, unescape
from engine.hl7.path import FieldPath
from engine.steps import RoutedMessage, StepKind, StepResult, from_settings

_NATIONAL = re.compile(r"0[1-9](?:[ .-]?[0-9]{2}){4}")


@dataclass(frozen=True)
class PhoneSettings:
    field: str = setting(default="PID-13", metadata={"doc": "the XTN field holding the numbers"})
    country_code: str = setting(default="33", metadata={"doc": "the country calling code"})

    def problems(self) -> list[tuple[str, str]]:
        found = []
        try:
            path = FieldPath.parse(self.field)
        except ValueError as error:
            return [("field", str(error))]
        if path.depth or path.repetition is not None:
            found.append(("field", "a whole field such as PID-13 (every repetition is read)"))
        if not self.country_code.isdigit() or not 1 <= len(self.country_code) <= 3:
            found.append(("country_code", "one to three digits, such as 33"))
        return found


class PhoneE164:
    def __init__(self, settings: PhoneSettings) -> None:
        self._field = FieldPath.parse(settings.field)
        self._prefix = f"+{settings.country_code}"

    def __call__(self, routed: RoutedMessage) -> StepResult:
        message = routed.message
        segment = message.segment(self._field.segment)
        if segment is None:
            return StepResult("skipped", "no_segment")
        formatted = 0
        for number in range(1, len(segment.repetitions(self._field.field)) + 1):
            place = FieldPath(self._field.segment, self._field.field, number, 1)
            value = unescape(place.read(message) or "", message.separators)
            if _NATIONAL.fullmatch(value):
                digits = re.sub(r"[ .-]", "", value)
                place.write(message, escape(self._prefix + digits[1:], message.separators))
                formatted += 1
        if not formatted:
            return StepResult("unchanged")
        routed.changed = True
        return StepResult("formatted", str(formatted))


PHONE_E164 = StepKind(
    name="phone_e164",
    settings=PhoneSettings,
    build=from_settings(PhoneE164),
    doc="French phone numbers (XTN-1) in international E.164 form",
)
