"""The organisation certificate's expiry: read from the certificate the engine presents to
INSi, logged from 30 days before (daily), shown by `/readyz` and `/metrics`."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from structlog.testing import capture_logs

from engine.app.runtime import Engine
from engine.config.settings import load_config
from engine.ins.expiry import DAY_S, warn_if_expiring, watch_expiry
from engine.ins.settings import InsiSettings
from engine.ins.simulator.dataset import public_test_persons
from engine.ins.simulator.handler import InsiSimulator
from engine.ins.simulator.server import RunningSimulator, server_ssl_context, start_server
from engine.ins.tls import build_tls
from tests.conftest import StartEngine
from tests.support.metrics import value

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="IGC-SANTE TEST")


def client_certificate(ca: trustme.CA, folder: Path, not_after: dt.datetime) -> tuple[Path, Path]:
    leaf = ca.issue_cert(
        "insi-client.test",
        common_name="INSI-AUTO",
        organization_unit_name="CH-TEST",
        not_after=not_after,
    )
    cert, key = folder / "client.pem", folder / "client.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


@pytest.fixture
async def tls_simulator(ca: trustme.CA, tmp_path: Path) -> AsyncIterator[RunningSimulator]:
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = server_ssl_context(
        str(tmp_path / "server.pem"), str(tmp_path / "server.key"), str(tmp_path / "ca.pem")
    )
    running = await start_server(InsiSimulator(public_test_persons()), "127.0.0.1", 0, context)
    yield running
    await running.aclose()


def test_the_expiry_is_read_from_the_client_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    not_after = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    cert, key = client_certificate(ca, tmp_path, not_after)
    settings = InsiSettings(url="https://127.0.0.1:1/lps", cert=str(cert), key=str(key))
    assert build_tls(settings).expires_at == not_after.timestamp()


@pytest.mark.parametrize(
    ("days", "level"),
    [(31, None), (30, "warning"), (1, "warning"), (-2, "error")],
)
def test_warned_from_30_days_before(days: int, level: str | None) -> None:
    with capture_logs() as logs:
        warned = warn_if_expiring(NOW + days * DAY_S, NOW)
    assert warned is (level is not None)
    assert [entry["log_level"] for entry in logs] == ([level] if level else [])


async def test_checked_at_start_then_daily() -> None:
    clock = [NOW]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds
        if len(sleeps) == 3:
            raise RuntimeError("enough")

    with capture_logs() as logs, pytest.raises(RuntimeError):
        await watch_expiry(NOW + 30.5 * DAY_S, lambda: clock[0], sleep)
    assert sleeps == [DAY_S, DAY_S, DAY_S]
    days = [entry.get("days_left") for entry in logs]
    assert days == [29, 28], "not at start (30.5 days left), then once a day"


@pytest.mark.system
async def test_readyz_and_metrics_report_a_certificate_about_to_expire(
    ca: trustme.CA, tls_simulator: RunningSimulator, tmp_path: Path
) -> None:
    not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=10, hours=1)
    cert, key = client_certificate(ca, tmp_path, not_after)
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\n\n'
        f'[insi]\nurl = "{tls_simulator.url}"\nsimulator = false\nidam = "IDAM-1"\n'
        f'ca = "{tmp_path / "ca.pem"}"\ncert = "{cert}"\nkey = "{key}"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\n\n[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n',
        encoding="utf-8",
    )
    engine = Engine(load_config(config))
    with capture_logs() as logs:
        await engine.start()
    try:
        assert engine.http is not None
        host, port = engine.http.address
        async with aiohttp.ClientSession(f"http://{host}:{port}") as session:
            async with session.get("/readyz") as answer:
                body = await answer.json()
            async with session.get("/metrics") as answer:
                metrics = await answer.text()
    finally:
        await engine.stop()
    assert answer.status == 200
    assert body["insi"]["certificate"] == {
        "expires_at": not_after.isoformat(),
        "days_left": 10,
        "warning": True,
    }
    assert body["insi"]["simulated"] is False
    expiry = value(metrics, "ins_engine_insi_certificate_expiry_timestamp_seconds")
    assert expiry == not_after.timestamp()
    warnings = [entry for entry in logs if entry["event"].startswith("INSi certificate expires")]
    assert [entry["days_left"] for entry in warnings] == [10]
    assert time.time() < not_after.timestamp()


async def test_without_a_certificate_the_expiry_is_not_a_number(start_engine: StartEngine) -> None:
    """The simulator presents no certificate: NaN, never 0 (expired in 1970), so an expiry
    alert (`… - time() < 30 * 86400`) does not fire; `/readyz` shows no certificate."""
    engine = await start_engine(extra='[http]\nlisten = "127.0.0.1:0"\n', enrich=True)
    assert engine.http is not None
    host, port = engine.http.address
    async with aiohttp.ClientSession(f"http://{host}:{port}") as session:
        async with session.get("/readyz") as answer:
            body = await answer.json()
        async with session.get("/metrics") as answer:
            metrics = await answer.text()
    assert body["insi"]["simulated"] is True
    assert "certificate" not in body["insi"]
    expiry = value(metrics, "ins_engine_insi_certificate_expiry_timestamp_seconds")
    assert expiry is not None and math.isnan(expiry)
