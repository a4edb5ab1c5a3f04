"""The `ins-engine` command line: one sub-command per module of `engine.commands`.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`handler=` to a function taking the parsed arguments and returning an exit code.
A command that fails on bad input raises `CliError`, whose text names what to fix.
Only the module of the command given is imported (`--version` imports none); `--help`,
or a word that names no command, imports them all to list them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

from engine import __version__
from engine.errors import CliError, ConfigError

COMMAND_MODULES = (
    "engine.commands.run",
    "engine.commands.check",
    "engine.commands.reload",
    "engine.commands.queue",
    "engine.commands.reprocess",
    "engine.commands.messages",
    "engine.commands.insi_sim",
    "engine.commands.replay",
    "engine.commands.report",
    "engine.commands.enrich",
    "engine.commands.test",
    "engine.commands.store",
    "engine.commands.user",
    "engine.commands.deliver",
)


def build_parser(modules: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the sub-commands of `modules` (default: every command)."""
    parser = argparse.ArgumentParser(
        prog="ins-engine",
        description="HL7 v2 / MLLP integration engine that adds the INS to ADT messages.",
    )
    parser.add_argument("--version", action="version", version=f"ins-engine {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(name).register(subparsers)
    return parser


def needed_modules(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules parsing `argv` needs: the named command's, none for `--version`
    alone, every one otherwise (to list them in help or in an error)."""
    words = [arg for arg in argv if not arg.startswith("-")]
    if words:
        module = f"engine.commands.{words[0].replace('-', '_')}"
        return (module,) if module in COMMAND_MODULES else COMMAND_MODULES
    return (
        () if "--version" in argv and "-h" not in argv and "--help" not in argv else COMMAND_MODULES
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(needed_modules(arguments)).parse_args(arguments)
    try:
        status = int(args.handler(args))
        sys.stdout.flush()  # a reader gone away (`| head`) shows here, not at exit
        return status
    except (ConfigError, CliError) as error:
        for line in str(error).splitlines():  # a configuration may have several errors
            print(f"ins-engine {args.command}: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # As a Unix tool killed by SIGPIPE: no message, and nothing more written anywhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as error:  # a bug: one line that locates it, never a traceback
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        print(
            f"ins-engine {args.command}: internal error ({type(error).__name__} at {where}); "
            "please report it",
            file=sys.stderr,
        )
        return 1
