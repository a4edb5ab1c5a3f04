"""`ins-engine check`: validate a configuration file without starting anything: what the
file says, and what `run` needs from this machine (files, folders; `engine.preflight`).

`ins-engine check --keys` prints the reference of every key instead (the README's table is
this output, and a test keeps them equal).
"""

from __future__ import annotations

import argparse

from engine.commands.common import add_config_argument, read_config_for_start
from engine.config import documented_keys


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
    return 0


def key_reference() -> str:
    """Every key with its default and meaning, as a Markdown table."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, doc in documented_keys():
        shown = default.replace("|", "\\|")
        lines.append(f"| `{key}` | `{shown}` | {doc} |")
    return "\n".join(lines)
