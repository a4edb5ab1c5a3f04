"""`ins-engine check`: validate a configuration file without starting anything: what the
file says, and what `run` needs from this machine (files, folders; `engine.app.preflight`).

`ins-engine check --keys` prints the reference of every key instead, the step kinds' keys
after the configuration's (the documentation's configuration reference is this output,
written when the site is built: `docs/gen_reference.py`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from engine.commands.common import add_config_argument, read_config_for_start
from engine.config.settings import DestinationSettings, documented_keys
from engine.delivery.kind import kind_of
from engine.enrich.guard_settings import GUARD_OFF_WARNING
from engine.routing.accept_warnings import accept_warnings
from engine.steps.kind import StepKind
from engine.steps.registry import registry

# The order the reference presents the engine's own kinds in (entry points come sorted by name).
PRESENTED = ("ins_enrich", "filter", "validate", "set", "copy", "map")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check", help="validate a configuration file")
    add_config_argument(parser)
    parser.add_argument(
        "--keys", action="store_true", help="print every configuration key as a Markdown table"
    )
    parser.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    if args.keys:
        print(key_reference())
        return 0
    config = read_config_for_start(args)
    destinations = sum(len(route.destinations) for route in config.routes)
    insi = "SIMULATED (local simulator)" if config.insi.url is None else config.insi.url
    print(
        f"{config.source}: valid ({len(config.routes)} route(s), "
        f"{destinations} destination(s), INSi: {insi})"
    )
    for route in config.routes:
        steps = ", ".join(step.name for step in route.step_list()) or "no step"
        where = "" if route.source == config.source else f" ({route.source})"
        print(f"  route {route.name}{where}: {steps}")
        for destination in route.destinations:
            takes = ", ".join(destination.accept)
            own = "".join(f"; {step.name}" for step in destination.steps)
            print(f"    → {destination.name} ({_target(destination)}): {takes}{own}")
    for route in config.routes:
        if route.ins_guard.opted_out:
            file, key = route.where("ins_guard.strip_unqualified_ins")
            print(f"warning: {file}: {key}: {GUARD_OFF_WARNING}", file=sys.stderr)
        for key, text in accept_warnings(route):
            print("warning: {}: {}: {}".format(*route.where(key), text), file=sys.stderr)
        for number, destination in enumerate(route.destinations):
            kind = kind_of(destination)
            for name, text in kind.warnings(destination) if kind and kind.warnings else ():
                file, key = route.where(f"destinations[{number}].{name}")
                print(f"warning: {file}: {key}: {text}", file=sys.stderr)
    return 0


def _target(destination: DestinationSettings) -> str:
    """Where a destination sends: `mllp host:port`, `file folder`, `fhir base URL`..."""
    if destination.mllp is not None:
        return f"mllp {destination.mllp}"
    if destination.file is not None:
        return f"file {destination.file}"
    kind = kind_of(destination)
    assert kind is not None
    return f"{kind.name} {kind.target(destination.kind_tables[kind.name])}"


def presented_kinds() -> list[StepKind]:
    """The registered kinds, the engine's own first in the reference's order."""
    found = registry()
    kinds = [kind for kind in found.kinds.values() if found.origins[kind.name] == "built-in"]
    kinds.sort(key=lambda kind: PRESENTED.index(kind.name) if kind.name in PRESENTED else 99)
    others = [kind for kind in found.kinds.values() if kind not in kinds]
    return [*kinds, *others]


def key_reference(kinds: Iterable[StepKind] | None = None) -> str:
    """Every key with its default and meaning, as Markdown tables: the configuration's,
    then each step kind's (by default every registered kind)."""
    found = registry()
    sections = [_table(documented_keys())]
    for kind in presented_kinds() if kinds is None else kinds:
        origin = found.origins.get(kind.name, "built-in")
        where = "built-in" if origin == "built-in" else f"from {origin}"
        before = "; may run before the ACK" if kind.before_ack else ""
        sections.append(
            f"`{kind.name}` ({where}{before}): {kind.doc}\n\n"
            + _table(documented_keys(kind.settings))
        )
    return "\n\n".join(sections)


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in rows:
        shown = default.replace("|", "\\|")
        lines.append(f"| `{key}` | `{shown}` | {doc} |")
    return "\n".join(lines)
