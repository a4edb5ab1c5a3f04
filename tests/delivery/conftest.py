from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.config.settings import DestinationSettings, RouteSettings
from engine.enrich.store import IdentityTables
from engine.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(str(tmp_path / "engine.db"), [IdentityTables()])
    yield store
    await store.close()


Route = Callable[..., RouteSettings]


@pytest.fixture
def route() -> Route:
    """`route(mllp="127.0.0.1:1234", on_failure="park", ...)`: a route `adt` with one
    destination `down` whose retry delays are short enough for tests."""

    def make(**destination: Any) -> RouteSettings:
        settings = {
            "name": "down",
            "ack_timeout_s": 5.0,
            "backoff_base_s": 0.05,
            "backoff_cap_s": 0.2,
            **destination,
        }
        return RouteSettings(
            name="adt",
            listen="127.0.0.1:0",
            steps=[],
            destinations=[DestinationSettings(**settings)],
        )

    return make
