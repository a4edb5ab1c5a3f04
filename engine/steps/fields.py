"""The `set` and `copy` step kinds: write one field, component or subcomponent.

`set` writes a constant (HL7 delimiters in it are escaped with the message's own); `copy`
writes what another place of the message holds, as it stands. A copy never goes deeper
than its source (a component into a field is fine, a field into a component would split
it). A message without the segment to write (or to read) goes on unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as setting

from engine.hl7.escape import escape
from engine.hl7.path import FieldPath
from engine.steps.kind import StepKind, from_settings
from engine.steps.pipeline import RoutedMessage, StepResult

NO_SEGMENT = StepResult("skipped", "no_segment")


def path_problems(**paths: str) -> list[tuple[str, str]]:
    """(key, expected) for each setting that is not a field path."""
    found = []
    for key, text in paths.items():
        try:
            FieldPath.parse(text)
        except ValueError as error:
            found.append((key, str(error)))
    return found


@dataclass(frozen=True)
class SetSettings:
    field: str = setting(metadata={"doc": "where to write: MSH-5, PV1-3-1, PID-3[2]-4…"})
    value: str = setting(
        metadata={"doc": 'the text written (its HL7 delimiters are escaped); "" empties it'}
    )

    def problems(self) -> list[tuple[str, str]]:
        return path_problems(field=self.field)


@dataclass(frozen=True)
class CopySettings:
    field: str = setting(metadata={"doc": "where to write: MSH-5, PV1-3-1…"})
    source: str = setting(metadata={"doc": "where to read, at least as deep as `field`"})

    def problems(self) -> list[tuple[str, str]]:
        found = path_problems(field=self.field, source=self.source)
        if not found and FieldPath.parse(self.field).depth > FieldPath.parse(self.source).depth:
            found.append(("source", "a component or subcomponent when `field` is one"))
        return found


class SetField:
    def __init__(self, settings: SetSettings) -> None:
        self._path = FieldPath.parse(settings.field)
        self._value = settings.value

    def __call__(self, routed: RoutedMessage) -> StepResult:
        message = routed.message
        if not self._path.write(message, escape(self._value, message.separators)):
            return NO_SEGMENT
        routed.changed = True
        return StepResult("set", str(self._path))


class CopyField:
    def __init__(self, settings: CopySettings) -> None:
        self._path = FieldPath.parse(settings.field)
        self._source = FieldPath.parse(settings.source)

    def __call__(self, routed: RoutedMessage) -> StepResult:
        value = self._source.read(routed.message)
        if value is None or not self._path.write(routed.message, value):
            return NO_SEGMENT
        routed.changed = True
        return StepResult("copied", str(self._path))


SET = StepKind(
    name="set",
    inline=True,
    settings=SetSettings,
    build=from_settings(SetField),
    doc="writes a constant into a field, component or subcomponent",
)
COPY = StepKind(
    name="copy",
    inline=True,
    settings=CopySettings,
    build=from_settings(CopyField),
    doc="writes what another field, component or subcomponent holds",
)
