"""`ins-engine deliver`: the delivery process that `ins-engine run` starts on a machine with
more than one core (`engine.app.delivery_runtime`); not a command for people."""

from __future__ import annotations

import argparse
import socket

import uvloop

from engine.app.delivery_runtime import die_with_parent, serve
from engine.errors import CliError, EngineError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "deliver", help="(started by run) the engine's delivery process; not run by hand"
    )
    parser.add_argument("--control-fd", type=int, required=True, help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, required=True, help=argparse.SUPPRESS)
    parser.set_defaults(handler=deliver)


def deliver(args: argparse.Namespace) -> int:
    die_with_parent(args.parent)
    try:
        control = socket.socket(fileno=args.control_fd)
    except OSError:
        raise CliError("ins-engine deliver is started by ins-engine run, not by hand") from None
    try:
        uvloop.run(serve(control))
    except EngineError as error:  # e.g. the store cannot be opened
        raise CliError(f"delivery process: {error}") from None
    return 0
