"""What starting the engine needs from this machine, checked before anything starts.

The configuration loader checks what the file says; this checks that the machine agrees:
certificate files exist and load, the PKCS#12 and PostgreSQL password variables are set, the
store's and the file destinations' folders can be written, every route delivers somewhere,
the console's users file reads, and what each step kind a route uses checks of its own
(`StepKind.preflight`: INSi's certificates). `ins-engine check` and `ins-engine run` both
call it and print every problem, so `check` never says "valid" where `run` then fails on
one of these. Each problem names the file, the key and the path.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

from engine.config.paths import folder_problem, unreadable
from engine.config.settings import ClientTls, Config, ListenerTls, RouteSettings, sqlite_path
from engine.config.tls import client_context, server_context
from engine.console.users import load_users
from engine.delivery.kind import kind_of
from engine.errors import ConfigError
from engine.steps.registry import registry

Problem = tuple[str, str]  # (key, what is wrong and what to do)


def preflight(config: Config) -> list[ConfigError]:
    """Every problem that would stop `run` (or lose messages once it runs), in file order;
    a route's are named in the file it is in."""
    found = [ConfigError(config.source, key, text) for key, text in _engine_problems(config)]
    for route in config.routes:
        found += [ConfigError(*route.where(key), text) for key, text in _route_problems(route)]
    return found


def _engine_problems(config: Config) -> Iterator[Problem]:
    store = sqlite_path(config.engine.store)
    if store is not None:
        yield from _store_problems(Path(store))
    variable = config.engine.store_password_env
    if store is None and variable is not None and variable not in os.environ:
        yield (
            "engine.store_password_env",
            f"set the store's password in the environment variable {variable}",
        )
    for kind in registry().kinds.values():
        if kind.preflight is not None and any(route.uses(kind.name) for route in config.routes):
            yield from kind.preflight(config)
    if config.http is not None:
        if config.http.tls is not None:
            yield from _tls_problems("http.tls", config.http.tls)
        if config.http.users is not None:
            yield from _users_problems(Path(config.http.users))


def _route_problems(route: RouteSettings) -> Iterator[Problem]:
    """A route's problems, keys relative to the route."""
    if not route.destinations:
        yield (
            "destinations",
            "at least one destination: without one, messages are acknowledged and then dropped",
        )
    if route.tls is not None:
        yield from _tls_problems("tls", route.tls)
    for number, destination in enumerate(route.destinations):
        where = f"destinations[{number}]"
        if destination.file is not None:
            problem = folder_problem(Path(destination.file))
            if problem:
                yield f"{where}.file", problem
        if destination.tls is not None:
            yield from _tls_problems(f"{where}.tls", destination.tls)
        kind = kind_of(destination)
        if kind is not None and kind.preflight is not None:
            table = destination.kind_tables[kind.name]
            for key, problem in kind.preflight(table):
                yield f"{where}.{kind.name}.{key}", problem


def _users_problems(path: Path) -> Iterator[Problem]:
    """A users file that exists must load (a missing one is created by `user add`)."""
    try:
        load_users(path)
    except ConfigError as error:
        yield "http.users", f"{error.file}: {error.key}: {error.expected}"


def _store_problems(database: Path) -> Iterator[Problem]:
    problem = folder_problem(database.parent)
    if problem:
        yield "engine.store", problem
    elif database.exists() and not database.is_file():
        yield "engine.store", f"{database} is not a file"
    elif database.exists() and not os.access(database, os.R_OK | os.W_OK):
        yield "engine.store", f"{database} is not readable and writable by this user"


def _tls_problems(key: str, settings: ListenerTls | ClientTls) -> Iterator[Problem]:
    problems = [
        problem
        for name in ("cert", "key", "client_ca", "ca")
        for problem in unreadable(f"{key}.{name}", getattr(settings, name, None))
    ]
    yield from problems
    if problems:
        return
    try:
        if isinstance(settings, ListenerTls):
            server_context(settings)
        else:
            client_context(settings)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "reason", None) or type(error).__name__
        yield key, f"the certificate, key or CA files do not load ({reason}): PEM files expected"
