"""Route tests beside the routes: a message in, what each destination must receive.

    tests/<route>/<case>/in.hl7              the message the route receives
    tests/<route>/<case>/out.<dest>.hl7      what destination <dest> must receive, byte for byte
    tests/<route>/<case>/out.<dest>.json     for a destination whose kind previews its writes
                                             (fhir): the writes it must make, as JSON
    tests/<route>/<case>/case.toml           optional: description, ack, now, decisions, [insi],
                                             [steps.<step>]

`tests/` is beside the configuration file. A destination without an out file must receive
nothing (make no write). A destination whose kind previews its writes
(`DestinationKind.preview`, `engine.delivery.kind`) is compared on what a dry run of it
writes for the message it receives, by its kind's `differences`. Message files are read as
`replay` reads them (LF line ends become CR). A case runs offline, the route built as the
engine builds it (`engine.embed`), on the in-process INSi simulator (the public test
persons, unless its `[insi]` names other persons) and with a fixed clock (`now`), so ZFD-6
is the same at every run.

A case can replace a step by a canned result, to test the rest of the route without what
that step needs (an INSi answer, a lookup service) or whatever it would decide:

    [steps.ins]                    # the route's step named "ins" is not run...
    outcome = "verified"           # ...its decision is this outcome
    detail = "canned"              # optional
    action = "continue"            # or "drop": the message goes nowhere (default continue)

`[steps."lab/ward"]` replaces the step "ward" of destination "lab" alone, as `decisions` name
it. A canned step leaves the message as it is.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.config.settings import Config, DestinationSettings, RouteSettings, build_section
from engine.delivery.kind import DestinationKind, NotWritten, kind_of
from engine.embed import Processed, RouteRunner
from engine.errors import ConfigError, ConfigErrors, EngineError
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.diff import differences
from engine.hl7.message import Message
from engine.ins.settings import InsiSettings
from engine.routing.plans import build_plan
from engine.routing.route import RoutePlan
from engine.steps.kind import Resources
from engine.steps.pipeline import BoundStep, RoutedMessage, Step, StepResult
from engine.store.decision import Decision
from engine.tools.replay.reader import ReadError, read_messages

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
ACK_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
ACTIONS = ("continue", "drop")
HL7 = ".hl7"  # the suffix of an out file holding the message a destination receives


@dataclass(frozen=True)
class CaseSettings:
    """The keys of a case's `case.toml`."""

    description: str = field(default="", metadata={"doc": "what the case shows"})
    ack: str = field(default="AA", metadata={"doc": "the answer the sender must get"})
    now: dt.datetime = field(default=NOW, metadata={"doc": "the clock (ZFD-6), with its offset"})
    decisions: list[str] = field(
        default_factory=list,
        metadata={"doc": 'decisions that must be taken: "[destination/]step outcome [detail]"'},
    )
    insi: InsiSettings = field(
        default_factory=InsiSettings, metadata={"doc": "the in-process simulator's settings"}
    )

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.ack not in ACK_CODES:
            found.append(("ack", f"one of {', '.join(ACK_CODES)}"))
        if self.now.tzinfo is None:
            found.append(("now", "a date and time with its offset, such as 2025-01-01T12:00:00Z"))
        if self.insi.url is not None:
            found.append(("insi.url", "none: route tests run on the in-process simulator"))
        return found


@dataclass(frozen=True)
class CannedStep:
    """The keys of a `[steps.<step>]` table: the result that stands for the step's."""

    outcome: str = field(metadata={"doc": "the step's decision"})
    detail: str = field(default="", metadata={"doc": "the decision's detail"})
    action: str = field(default="continue", metadata={"doc": '"continue" or "drop"'})

    def problems(self) -> list[tuple[str, str]]:
        if self.action not in ACTIONS:
            return [("action", " or ".join(ACTIONS))]
        return []

    def result(self) -> StepResult:
        return StepResult(self.outcome, self.detail, drop=self.action == "drop")


@dataclass(frozen=True)
class Case:
    route: str
    name: str
    folder: Path

    @property
    def label(self) -> str:
        return f"{self.route}/{self.name}"


@dataclass(frozen=True)
class CaseResult:
    case: Case
    description: str
    failures: list[str]


class CaseError(EngineError):
    """A case folder that cannot be run; the text says what to fix."""


def tests_folder(config: Config) -> Path:
    return Path(config.source).resolve().parent / "tests"


def find_cases(config: Config, patterns: Sequence[str] = ()) -> list[Case]:
    """Every case folder (those whose `route/case` matches one of `patterns`, if given)."""
    root = tests_folder(config)
    cases = [
        Case(route.name, folder.name, folder)
        for route in sorted(root.iterdir() if root.is_dir() else (), key=lambda p: p.name)
        if route.is_dir()
        for folder in sorted(route.iterdir())
        if folder.is_dir()
    ]
    if patterns:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.label, p) for p in patterns)]
    return cases


async def run_case(config: Config, case: Case) -> CaseResult:
    """Run one case; its failures say which destination and which field differ."""
    try:
        settings, canned, raw, expected = _read_case(config, case)
        runner = await _runner(config, case, settings, canned)
    except (CaseError, ConfigError) as error:
        return CaseResult(case, "", [str(error)])
    try:
        processed = await runner.process(raw)
    finally:
        await runner.aclose()
    charsets = runner.plan.charsets
    route = _route(config, case)
    failures = _ack_failures(settings.ack, processed)
    for destination in route.destinations:
        wanted = expected.get(destination.name)
        got = processed.destinations.get(destination.name)
        kind = _previewing(destination)
        found = (
            _compare(wanted, got, charsets)
            if kind is None
            else await _compare_writes(kind, route, destination, wanted, got)
        )
        failures += [f"{destination.name}: {failure}" for failure in found]
    failures += _decision_failures(settings.decisions, processed.decisions)
    return CaseResult(case, settings.description, failures)


async def _runner(
    config: Config, case: Case, settings: CaseSettings, canned: dict[str, StepResult]
) -> RouteRunner:
    """The case's route built as `RouteRunner.open` builds it (on the case's INSi settings and
    clock), the steps `canned` names answering their canned result, before the ACK too."""
    config = config.with_section("insi", settings.insi)
    (route,) = [route for route in config.routes if route.name == case.route]
    resources = Resources()
    try:
        plan = await build_plan(route, config, None, resources, lambda: settings.now)
        return RouteRunner(_with_canned_steps(plan, canned, case), resources)
    except BaseException:
        await resources.aclose()
        raise


def _read_case(
    config: Config, case: Case
) -> tuple[CaseSettings, dict[str, StepResult], bytes, dict[str, bytes]]:
    route = _route(config, case)
    settings_file = case.folder / "case.toml"
    table = {}
    if settings_file.exists():
        try:
            table = tomllib.loads(settings_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise CaseError(f"{settings_file}: valid UTF-8 TOML ({error})") from None
    settings, canned = case_settings(table, settings_file)
    suffixes = {destination.name: _suffix(destination) for destination in route.destinations}
    expected = {}
    for path in sorted(case.folder.glob("out.*")):
        name, dot, extension = path.name[len("out.") :].rpartition(".")
        suffix = dot + extension
        if suffix not in (HL7, *suffixes.values()):
            continue  # not an out file (an editor's copy, a note)
        if name not in suffixes:
            raise CaseError(f"{path}: route {route.name} has no destination {name}")
        if suffix != suffixes[name]:
            raise CaseError(f"{path}: destination {name} expects out.{name}{suffixes[name]}")
        expected[name] = _one_message(path) if suffix == HL7 else _read(path)
    return settings, canned, _one_message(case.folder / "in.hl7"), expected


def _route(config: Config, case: Case) -> RouteSettings:
    routes = {route.name: route for route in config.routes}
    route = routes.get(case.route)
    if route is None:
        raise CaseError(
            f"{case.folder.parent}: no route {case.route} (routes: {', '.join(routes)})"
        )
    return route


def _previewing(destination: DestinationSettings) -> DestinationKind | None:
    """The destination's kind when route tests compare what it writes, not HL7 bytes."""
    kind = kind_of(destination)
    return kind if kind and kind.preview and kind.differences else None


def _suffix(destination: DestinationSettings) -> str:
    kind = _previewing(destination)
    return HL7 if kind is None else kind.suffix


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CaseError(f"{path}: {error.strerror}") from None


def case_settings(
    table: dict[str, object], file: Path
) -> tuple[CaseSettings, dict[str, StepResult]]:
    """A `case.toml` read: its settings, and the canned results of the steps it replaces."""
    table = dict(table)
    canned = _canned_steps(table.pop("steps", {}), file)
    return build_section(CaseSettings, table, file), canned


def _canned_steps(tables: object, file: Path) -> dict[str, StepResult]:
    """The `[steps.<step>]` tables: each step's canned result, by `[destination/]step`."""
    if not isinstance(tables, dict):
        raise ConfigError(str(file), "steps", "a table of [steps.<step name>] tables")
    canned: dict[str, StepResult] = {}
    errors: list[ConfigError] = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            errors.append(ConfigError(str(file), f"steps.{name}", "a table"))
            continue
        try:
            canned[name] = build_section(CannedStep, table, file).result()
        except ConfigErrors as found:
            errors += [
                ConfigError(error.file, f"steps.{name}.{error.key}".rstrip("."), error.expected)
                for error in found.errors
            ]
    if errors:
        raise ConfigErrors(errors)
    return canned


def _with_canned_steps(plan: RoutePlan, canned: dict[str, StepResult], case: Case) -> RoutePlan:
    """The route's plan with the steps `canned` names answering their canned result."""
    left = dict(canned)

    def swap(steps: Sequence[BoundStep], destination: str = "") -> list[BoundStep]:
        swapped = []
        for step in steps:
            result = left.pop(f"{destination}/{step.name}" if destination else step.name, None)
            swapped.append(step if result is None else replace(step, run=_answering(result)))
        return swapped

    plan = replace(
        plan,
        steps=swap(plan.steps),
        before_ack=swap(plan.before_ack),
        destinations=[replace(d, steps=swap(d.steps, d.name)) for d in plan.destinations],
    )
    if left:
        known = [step.name for step in (*plan.before_ack, *plan.steps)] + [
            f"{d.name}/{step.name}" for d in plan.destinations for step in d.steps
        ]
        raise CaseError(
            f"{case.folder / 'case.toml'}: steps: no step {', '.join(left)} in route "
            f"{case.route} (steps: {', '.join(known) or 'none'})"
        )
    return plan


def _answering(result: StepResult) -> Step:
    def canned(routed: RoutedMessage) -> StepResult:
        return result

    return canned


def _one_message(path: Path) -> bytes:
    try:
        content = read_messages(path.read_bytes())
    except FileNotFoundError:
        raise CaseError(f"{path}: missing (each case holds in.hl7)") from None
    except (OSError, ReadError) as error:
        raise CaseError(f"{path}: {error}") from None
    if len(content.messages) != 1:
        raise CaseError(f"{path}: exactly one message ({len(content.messages)} found)")
    return content.messages[0].payload


def _ack_failures(wanted: str, processed: Processed) -> list[str]:
    refusal = processed.refusal
    got = processed.ack or "no ACK (an ACK is never answered)"
    if got == wanted:
        return []
    why = f" (ERR {refusal.error.code.value} at {refusal.error.location})" if refusal else ""
    return [f"ack: expected {wanted}, got {got}{why}"]


def _compare(wanted: bytes | None, got: bytes | None, charsets: CharsetPolicy) -> list[str]:
    if wanted == got:
        return []
    if wanted is None:
        return ["expected nothing, received a message"]
    if got is None:
        return ["expected a message, received nothing"]
    try:
        found = differences(_parse(wanted, charsets), _parse(got, charsets))
    except EngineError as error:
        return [f"the expected message cannot be read ({error})"]
    return found or ["same segments and fields, other bytes (charset or line ends)"]


async def _compare_writes(
    kind: DestinationKind,
    route: RouteSettings,
    destination: DestinationSettings,
    wanted: bytes | None,
    got: bytes | None,
) -> list[str]:
    """What a dry run of the destination writes for the message it receives (nothing when
    it receives none), against the expected writes."""
    assert kind.preview is not None and kind.differences is not None
    try:
        writes = [] if got is None else await kind.preview(route, destination).writes(got)
    except NotWritten as error:
        return [f"not written, the destination would park the message: {error}"]
    if wanted is None:
        return [f"expected nothing, got {len(writes)} write(s)"] if writes else []
    return kind.differences(wanted, writes)


def _parse(payload: bytes, charsets: CharsetPolicy) -> Message:
    return Message.parse(decode(payload, charsets).text)


def _decision_failures(wanted: list[str], decisions: list[Decision]) -> list[str]:
    taken = [_decision_text(decision) for decision in decisions]
    return [
        f"decisions: expected {text!r}, got {', '.join(map(repr, taken)) or 'none'}"
        for text in wanted
        if not any(made == text or made.startswith(f"{text} ") for made in taken)
    ]


def _decision_text(decision: Decision) -> str:
    step = f"{decision.destination}/{decision.step}" if decision.destination else decision.step
    return " ".join(part for part in (step, decision.outcome, decision.detail) if part)
