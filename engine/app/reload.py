"""What a reload of a running engine's configuration may change, and what it changes.

A reload re-reads the file the engine started with and the route files it names, and runs
what `ins-engine check` runs (the loader, then the preflight): a configuration `check`
refuses is refused, and the engine keeps the one it runs. Routes may be added, changed and
removed. The engine-wide sections hold what is opened once at start (`[engine]`: the store,
the processes, the leases, the logs, retention; `[http]`: the HTTP listener; an installed
kind's such as `[insi]`: the client its steps share), so a change there is refused too,
naming the section and its keys: a restart applies those.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from engine.app.preflight import preflight
from engine.config.settings import Config, RouteSettings, load_config
from engine.errors import ConfigError, ConfigErrors, EngineError

# A listener keeps its socket, and the connections open on it, when none of these changed:
# they are read when it is made (the address, TLS, the allow-list, the admission limits).
SOCKET_KEYS = (
    "listen",
    "tls",
    "allow",
    "max_connections",
    "max_connections_per_address",
    "max_accepts_per_s",
    "frame_timeout_s",
)


class ReloadRefused(EngineError):
    """The new configuration is not applied; the text says why (file and key)."""


@dataclass(frozen=True)
class RouteChanges:
    """How a new configuration's routes differ from the running ones'."""

    added: list[RouteSettings]
    changed: list[RouteSettings]  # their new settings
    removed: list[str]

    def summary(self) -> dict[str, list[str]]:
        return {
            "added": [route.name for route in self.added],
            "changed": [route.name for route in self.changed],
            "removed": self.removed,
        }


def read_checked(path: str) -> Config:
    """The configuration at `path` if `check` would pass it; else `ReloadRefused` with
    every error."""
    try:
        config = load_config(path)
    except ConfigError as error:
        raise ReloadRefused(str(error)) from None
    except OSError as error:
        raise ReloadRefused(f"{path}: cannot read ({error.strerror})") from None
    problems = preflight(config)
    if problems:
        raise ReloadRefused(str(ConfigErrors(problems)))
    return config


def refuse_fixed_changes(running: Config, new: Config) -> None:
    """`ReloadRefused` naming every engine-wide key that differs."""
    changed = [f"engine.{key}" for key in _differing(running.engine, new.engine)]
    if (running.http is None) != (new.http is None):
        changed.append("http")
    elif running.http is not None and new.http is not None:
        changed += [f"http.{key}" for key in _differing(running.http, new.http)]
    for name in sorted({*running.sections, *new.sections}):
        if running.sections.get(name) != new.sections.get(name):
            changed.append(name)
    if changed:
        raise ReloadRefused(
            f"{new.source}: {', '.join(changed)}: cannot change while the engine runs "
            "(restart it to apply); the running configuration is kept"
        )


def _differing(running: Any, new: Any) -> list[str]:
    return [
        item.name
        for item in dataclasses.fields(running)
        if getattr(running, item.name) != getattr(new, item.name)
    ]


def route_changes(running: Config, new: Config) -> RouteChanges:
    before = {route.name: route for route in running.routes}
    after = {route.name: route for route in new.routes}
    return RouteChanges(
        added=[route for name, route in after.items() if name not in before],
        changed=[
            route for name, route in after.items() if name in before and before[name] != route
        ],
        removed=[name for name in before if name not in after],
    )


def keeps_socket(running: RouteSettings, new: RouteSettings) -> bool:
    """Whether a changed route's listener can stay, its open connections with it."""
    return all(getattr(running, key) == getattr(new, key) for key in SOCKET_KEYS)
