"""`ins-engine run`: start every route's listener and serve until SIGTERM, SIGINT or SIGHUP."""

from __future__ import annotations

import argparse

import uvloop

from engine.app.runtime import Engine
from engine.base.logs import configure_logging, get_logger
from engine.commands.common import add_config_argument, read_config_for_start
from engine.errors import CliError, ConfigError, EngineError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the engine on a configuration file")
    add_config_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = read_config_for_start(args)
    configure_logging(config.engine.log_level, config.engine.log_format)
    get_logger("engine").info("starting", config=config.source)
    try:
        # uvloop: the same asyncio API with a faster loop and transports (a quarter less CPU
        # on the acknowledgement path); the engine's code runs unchanged on either loop.
        uvloop.run(Engine(config).run_until_stopped())
    except ConfigError:  # names the file and the key (e.g. a listen address in use)
        raise
    except EngineError as error:  # another engine holds the store, or it is unreachable,
        # or of another schema version
        raise CliError(f"cannot start: {error}") from None
    except OSError as error:  # not foreseen by the checks: say which file at least
        where = f" ({error.filename})" if error.filename else ""
        raise CliError(f"cannot start: {error.strerror or type(error).__name__}{where}") from None
    return 0
