"""`ins-engine reload`: have the engines running a configuration read it again.

The engines that run on the configuration's store on this machine are found in the store's
engines table, each with its PID, and sent SIGHUP (what `systemctl reload` sends too); each
re-reads the files it started with, checks them as `check` does and applies the routes
added, changed and removed, or keeps what it runs and says why. Each publishes the outcome
in the store, where this command waits for it: exit 0 when every engine applied the
configuration, 1 when one did not (refused it, or could not bind a listener: its reasons
printed) or did not answer in time, 2 when the file does not load or no engine runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from dataclasses import dataclass

from engine.app.systemd import RELOAD_SIGNAL
from engine.commands.common import add_config_argument, on_store
from engine.config.settings import load_config
from engine.errors import CliError, ConfigError
from engine.store.backends import OpenStore
from engine.store.base import EngineState

POLL_S = 0.2
DELIVERY_SUFFIX = "/delivery"  # a delivery process's row: it reloads with its engine


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reload",
        help="make the running engine re-read its configuration (routes added, changed, removed)",
        description=__doc__.split("\n\n")[1],
    )
    add_config_argument(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="how long to wait for each engine's outcome (default 60)",
    )
    parser.set_defaults(handler=reload)


@dataclass(frozen=True)
class EngineAnswer:
    engine: EngineState
    payload: dict[str, object] | None  # None: no answer within the timeout


def reload(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as error:
        raise CliError(
            f"{error}\nnot reloaded: the running engine keeps its configuration"
        ) from None
    if args.timeout <= 0:
        raise CliError("--timeout: a number of seconds > 0")
    answers = on_store(config, lambda store: _reload_engines(store, args.timeout))
    refused = False
    for answer in answers:
        refused |= _print(answer)
    return 1 if refused else 0


async def _reload_engines(store: OpenStore, timeout_s: float) -> list[EngineAnswer]:
    host = socket.gethostname()
    engines = [
        engine
        for engine in await store.engines()
        if engine.host == host and not engine.engine_id.endswith(DELIVERY_SUFFIX)
    ]
    asked_at = time.time()
    signalled = [engine for engine in engines if _signal(engine)]
    if not signalled:
        raise CliError(f"no engine runs on the store {store.name} on this machine ({host})")
    deadline = time.monotonic() + timeout_s
    answers: dict[str, dict[str, object]] = {}
    while len(answers) < len(signalled) and time.monotonic() < deadline:
        for state in await store.states():
            payload = json.loads(state.payload) if state.name.startswith("reload ") else None
            if payload is not None and float(payload.get("at", 0)) >= asked_at:
                answers[state.name.removeprefix("reload ")] = payload
        await asyncio.sleep(POLL_S)
    return [EngineAnswer(engine, answers.get(engine.engine_id)) for engine in signalled]


def _signal(engine: EngineState) -> bool:
    """Send the reload signal; False when that PID no longer runs (a row left by a crash)."""
    try:
        os.kill(engine.pid, RELOAD_SIGNAL)
    except ProcessLookupError:
        return False
    except PermissionError:
        raise CliError(
            f"not allowed to signal the engine {engine.engine_id} (PID {engine.pid}): run "
            "this as the engine's user"
        ) from None
    return True


def _print(answer: EngineAnswer) -> bool:
    """Print one engine's outcome; True when it did not apply the configuration."""
    name = answer.engine.engine_id
    payload = answer.payload
    if payload is None:
        print(f"{name}: no answer (see its log)", file=sys.stderr)
        return True
    changes = payload.get("changes") or {}
    assert isinstance(changes, dict)
    done = "; ".join(f"{what} {', '.join(names)}" for what, names in changes.items() if names)
    outcome = str(payload["outcome"])
    if outcome == "applied":
        print(f"{name}: reloaded ({done or 'no route changed'})")
        return False
    heading = {
        "refused": "refused, the running configuration is kept:",
        "incomplete": f"reloaded ({done}), but a listener could not be bound:",
    }.get(outcome, "failed (see its log):")
    print(f"{name}: {heading}", file=sys.stderr)
    for line in str(payload["reason"]).splitlines():
        print(f"  {line}", file=sys.stderr)
    return True
