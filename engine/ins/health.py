"""INSi as an operator sees it: simulated or not, the breaker, the last error.

The engine process knows this; `ins-engine queue status` runs in another process. The
service records each change here, and whoever listens (the runtime, which writes it into
the store) gets the new state. Changes are rare: the breaker opening or closing, a failed
call. Every text here is written by the engine (error codes and causes, a host name), never
a patient's data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import httpx

from engine.ins.breaker import BreakerState
from engine.ins.errors import InsiError

IN_PROCESS = "in-process simulator"


def endpoint_of(url: str | None) -> str:
    """Where INSi calls go, as logs and `queue status` name it: host:port, never a path."""
    if url is None:
        return IN_PROCESS
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port or (443 if parsed.scheme == 'https' else 80)}"


@dataclass(frozen=True, slots=True)
class InsiHealth:
    simulated: bool
    endpoint: str  # `IN_PROCESS`, or the host:port of `[insi] url`
    breaker: str = BreakerState.CLOSED.value
    breaker_since: float | None = None  # wall clock
    last_error: str | None = None  # "code: text"
    last_error_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InsiHealth:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})  # type: ignore[arg-type]


class HealthBoard:
    """The current `InsiHealth`, and a listener told of every change."""

    def __init__(self, health: InsiHealth, clock: Callable[[], float] = time.time) -> None:
        self.health = replace(health, breaker_since=clock())
        self._clock = clock
        self.on_change: Callable[[InsiHealth], None] = lambda health: None

    def breaker_changed(self, state: BreakerState) -> None:
        self._set(replace(self.health, breaker=state.value, breaker_since=self._clock()))

    def failed(self, error: InsiError) -> None:
        self._set(
            replace(self.health, last_error=f"{error.code}: {error}", last_error_at=self._clock())
        )

    def _set(self, health: InsiHealth) -> None:
        self.health = health
        self.on_change(health)
