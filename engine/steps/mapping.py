"""The `map` step kind: replace a value through a lookup table kept in a file beside the route.

The table is a CSV file (UTF-8): a header row, then one `value,replacement` row per code,
for example a PAS ward code and the lab system's. It is read when the configuration is
loaded, so `check` reports a bad table by file and line. The value read (unescaped) is
looked up as it stands; an empty value is left alone. A value the table does not list is
kept, replaced by `default`, or stops the message (`unmapped = "fail"`: it is dropped,
visible as such, and the sender's next message goes on).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from dataclasses import field as setting
from pathlib import Path

from engine.errors import ConfigError
from engine.hl7.escape import escape, unescape
from engine.hl7.path import FieldPath
from engine.steps.fields import NO_SEGMENT, path_problems
from engine.steps.kind import StepContext, StepKind
from engine.steps.pipeline import RoutedMessage, Step, StepResult

UNMAPPED = ("keep", "default", "fail")


class TableError(ValueError):
    """A lookup table that cannot be used; the text names the line."""


def read_table(path: str) -> dict[str, str]:
    """value → replacement; raises TableError."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise TableError(f"a readable UTF-8 CSV file ({type(error).__name__})") from None
    table: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise TableError(f"two columns per row ({Path(path).name} line {number}: {len(row)})")
        if row[0] in table:
            raise TableError(f"each value once ({Path(path).name} line {number} repeats one)")
        table[row[0]] = row[1]
    return table


@dataclass(frozen=True)
class MapSettings:
    field: str = setting(metadata={"doc": "where to write the replacement: PV1-3-1…"})
    table: str = setting(
        metadata={
            "doc": "CSV lookup table beside the route: a header row, then value,replacement",
            "path": True,
        }
    )
    source: str = setting(default="", metadata={"doc": "where to read the value; default `field`"})
    unmapped: str = setting(
        default="keep",
        metadata={"doc": "a value not in the table: keep it, write `default`, or fail (drop)"},
    )
    default: str | None = setting(default=None, metadata={"doc": 'with unmapped = "default"'})

    def problems(self) -> list[tuple[str, str]]:
        found = path_problems(field=self.field, **({"source": self.source} if self.source else {}))
        if self.unmapped not in UNMAPPED:
            found.append(("unmapped", '"keep", "default" or "fail"'))
        if (self.default is not None) != (self.unmapped == "default"):
            found.append(("default", 'a text exactly when unmapped = "default"'))
        try:
            read_table(self.table)
        except TableError as error:
            found.append(("table", str(error)))
        return found


class MapField:
    def __init__(self, settings: MapSettings, table: dict[str, str]) -> None:
        self._path = FieldPath.parse(settings.field)
        self._source = FieldPath.parse(settings.source or settings.field)
        self._table = table
        self._unmapped = settings.unmapped
        self._default = settings.default

    def __call__(self, routed: RoutedMessage) -> StepResult:
        message = routed.message
        read = self._source.read(message)
        if read is None:
            return NO_SEGMENT
        value = unescape(read, message.separators)
        if not value:
            return StepResult("skipped", "empty")
        replacement = self._table.get(value)
        outcome = "mapped"
        if replacement is None:
            if self._unmapped == "fail":
                return StepResult("dropped", "unmapped", drop=True)
            if self._unmapped == "keep":
                return StepResult("unmapped", "kept")
            replacement, outcome = self._default or "", "unmapped"
        if not self._path.write(message, escape(replacement, message.separators)):
            return NO_SEGMENT
        routed.changed = True
        return StepResult(outcome, "default" if outcome == "unmapped" else str(self._path))


async def build(settings: MapSettings, context: StepContext) -> Step:
    try:
        table = read_table(settings.table)
    except TableError as error:  # changed since the configuration was checked
        raise ConfigError(settings.table, "-", str(error)) from None
    return MapField(settings, table)


MAP = StepKind(
    name="map",
    inline=True,
    settings=MapSettings,
    build=build,
    doc="replaces a value through a lookup table file (unmapped: keep, default or fail)",
)
