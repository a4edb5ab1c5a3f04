"""Fixtures shared by the whole suite: engines started in-process on loopback."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from engine.app.runtime import Engine
from engine.base.logs import configure_logging
from engine.config.settings import load_config
from engine.hl7.ack import AckBuilder
from tests.support.postgres import PASSWORD, PostgresServer, Unavailable

FIXED_TIME = datetime(2026, 1, 2, 3, 4, 5)
# Property tests: enough examples to matter in every run, ten times as many with --slow.
# Neither times them: a per-example deadline or a "generation is slow" health check fails a
# correct test on a loaded machine (pytest-timeout still bounds each test).
settings.register_profile(
    "suite",
    max_examples=400,
    derandomize=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("slow", settings.get_profile("suite"), max_examples=4000)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow", action="store_true", help="property tests run ten times as many examples"
    )


def pytest_configure(config: pytest.Config) -> None:
    settings.load_profile("slow" if config.getoption("--slow") else "suite")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test on the PostgreSQL server is marked `postgres` (`make test-fast` leaves it out);
    with --slow, property tests get the hour ten times as many examples may need."""
    for item in items:
        if on_postgres(item):
            item.add_marker(pytest.mark.postgres)
        if config.getoption("--slow") and getattr(
            getattr(item, "obj", None), "is_hypothesis_test", False
        ):
            item.add_marker(pytest.mark.timeout(3600), append=False)


def on_postgres(item: pytest.Item) -> bool:
    """It takes the server's fixture, or a backend parameter that asks for it at run time."""
    callspec = getattr(item, "callspec", None)
    backends = callspec.params.values() if callspec is not None else ()
    return "postgres_server" in getattr(item, "fixturenames", ()) or "postgresql" in backends


@pytest.fixture(autouse=True)
def _logging_to_stderr() -> None:
    configure_logging("info", "json")


def fixed_acks() -> AckBuilder:
    """ACKs with a fixed MSH-7 and ids ACK00001, ACK00002... so their bytes are exact."""
    counter = itertools.count(1)
    return AckBuilder(clock=lambda: FIXED_TIME, make_id=lambda: f"ACK{next(counter):05d}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run, or for each worker of `pytest -n` (started
    at its first use, about a second).
    Without the server binaries the PostgreSQL tests are skipped, except in CI, where
    `.ci/run` installs them and their absence is an error."""
    try:
        server = PostgresServer.start()
    except Unavailable as missing:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(missing))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty store of its own for one test; its password is in PGPASSWORD."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return postgres_server.create_schema(f"t_{uuid.uuid4().hex[:12]}")


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A test taking this runs once on a SQLite file and once on a PostgreSQL store."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'engine.db'}"
    return str(request.getfixturevalue("postgres_url"))


StartEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def start_engine(tmp_path: Path) -> AsyncIterator[StartEngine]:
    """Start an engine on a TOML text of route keys; stopped at the end of the test.

    `route` holds extra keys of the single route `adt` (listening on a free port);
    `extra` is appended to the file (more tables). The store is a SQLite file in tmp_path,
    or the store URL `store` names (a `postgres_url`).
    `enrich=True` turns the route's INS enrichment on (the in-process INSi simulator);
    `enrich=None` leaves the key out, for a route that lists its `steps`.
    The engine runs as one process unless `processes` says otherwise (tests of the
    delivery process run `ins-engine run` as a subprocess: tests/delivery/).
    """
    engines: list[Engine] = []

    async def start(
        route: str = "",
        extra: str = "",
        *,
        database: str = "engine.db",
        store: str | None = None,
        enrich: bool | None = False,
        processes: int = 1,
    ) -> Engine:
        config_file = tmp_path / f"config{len(engines)}.toml"
        url = store or f"sqlite:///{tmp_path / database}"
        config_file.write_text(
            f'[engine]\nstore = "{url}"\nprocesses = {processes}\n\n'
            "[insi]\nsimulator = true\n\n"
            f'[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
            + ("" if enrich is None else f"enrich = {str(enrich).lower()}\n")
            + f"{route}\n{extra}\n",
            encoding="utf-8",
        )
        engine = Engine(load_config(config_file), acks=fixed_acks())
        engines.append(engine)
        await engine.start()
        return engine

    yield start
    for engine in engines:
        await engine.stop()
