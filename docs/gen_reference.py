"""The reference pages, written at build time from the code they describe (an MkDocs hook).

A page holds a marker such as `<!-- reference: configuration -->` on a line of its own; the
hook replaces it with what the code says today: the configuration keys as
`ins-engine check --keys` prints them, the metrics as the engine registers them, the command
line as argparse parses it. Nothing here is copied by hand, so the reference cannot drift
from the engine.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from typing import Any

HELP_WIDTH = 100  # the width help is wrapped at, whatever the terminal building the site
MARKER = re.compile(r"^<!-- reference: ([a-z-]+) -->$", re.MULTILINE)  # a line of its own


def configuration_reference() -> str:
    """Every configuration key and every installed step kind's keys: `check --keys`."""
    from engine.commands.check import key_reference

    return key_reference()


def metrics_reference() -> str:
    """Every metric a running engine serves on `/metrics`, with its type, labels and help."""
    from prometheus_client.metrics import MetricWrapperBase

    from engine.base.metrics import EngineMetrics
    from engine.steps.registry import registry

    kinds = registry()
    counters = kinds.decision_counters()  # those the installed step kinds add
    components = kinds.metric_components()  # and their families
    metrics = EngineMetrics(counters, components)
    metrics.watch_wal(lambda: 0)  # registered only on SQLite: listed all the same
    holders = [metrics, *(metrics.component(name, make) for name, make in components.items())]
    labels = {
        wrapper._name: wrapper._labelnames
        for holder in holders
        for wrapper in vars(holder).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    labels.update((counter.name, counter.labels) for counter in counters)
    rows = ["| metric | type | labels | what |", "|---|---|---|---|"]
    for family in metrics.registry.collect():
        shown = f"{family.name}_total" if family.type == "counter" else family.name
        names = ", ".join(f"`{label}`" for label in labels.get(family.name, ()))
        rows.append(f"| `{shown}` | {family.type} | {names} | {family.documentation} |")
    return "\n".join(rows)


def cli_reference() -> str:
    """The help of `ins-engine` and of every command and sub-command, as argparse prints it."""
    from engine.cli import build_parser

    sections = []
    for title, parser in _parsers(build_parser(), "ins-engine"):
        parser.formatter_class = _formatter
        level = "###" if title.count(" ") > 1 else "##"  # sub-commands under their command
        sections.append(f"{level} `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```")
    return "\n\n".join(sections)


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=HELP_WIDTH)


def _parsers(
    parser: argparse.ArgumentParser, title: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The parser, then each of its sub-commands' parsers, depth first, in declaration order."""
    yield title, parser
    for action in parser._actions:  # argparse offers no public walk over sub-commands
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{title} {name}")


def codes_reference() -> str:
    """What each outcome and detail code means, as the console explains it on a message's
    page: the meanings the installed kinds declare."""
    from engine.steps.registry import registry

    rows = ["| code | what it means |", "|---|---|"]
    rows += [f"| `{code}` | {text} |" for code, text in sorted(registry().meanings().items())]
    return "\n".join(rows)


REFERENCES: dict[str, Callable[[], str]] = {
    "codes": codes_reference,
    "configuration": configuration_reference,
    "metrics": metrics_reference,
    "cli": cli_reference,
}


def expand(markdown: str) -> str:
    """The page with each reference marker replaced by the reference it names."""
    return MARKER.sub(lambda match: REFERENCES[match.group(1)](), markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: expand the markers of every page."""
    return expand(markdown)
