"""`ins-engine check`: validate a configuration file without starting anything."""

from __future__ import annotations

import argparse

from engine.commands.common import add_config_argument, read_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check", help="validate a configuration file")
    add_config_argument(parser)
    parser.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    config = read_config(args)
    destinations = sum(len(route.destinations) for route in config.routes)
    insi = "SIMULATED (local simulator)" if config.insi.url is None else config.insi.url
    print(
        f"{config.source}: valid ({len(config.routes)} route(s), "
        f"{destinations} destination(s), INSi: {insi})"
    )
    return 0
