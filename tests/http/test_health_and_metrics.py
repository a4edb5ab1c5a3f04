"""`/healthz`, `/readyz` and `/metrics` over real HTTP against an engine in this process."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from engine.app.runtime import Engine
from engine.config.settings import load_config
from engine.mllp.client import MllpClient
from tests.conftest import StartEngine
from tests.support.engine_process import REPOSITORY
from tests.support.messages import adt
from tests.support.metrics import labelled, value
from tests.support.waiting import until

HTTP = '[http]\nlisten = "127.0.0.1:0"\n'


def base_url(engine: Engine) -> str:
    assert engine.http is not None
    host, port = engine.http.address
    return f"http://{host}:{port}"


async def get(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, await answer.text(), dict(answer.headers)


async def test_no_http_listener_without_an_http_table(start_engine: StartEngine) -> None:
    engine = await start_engine()
    assert engine.http is None


async def test_healthz_and_readyz_answer_without_login(start_engine: StartEngine) -> None:
    engine = await start_engine(extra=HTTP, enrich=True)
    status, text, headers = await get(base_url(engine) + "/healthz")
    assert (status, text) == (200, '{"status": "alive"}')
    assert headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url(engine) + "/readyz") as answer,
    ):
        body = await answer.json()
    assert answer.status == 200
    assert body == {
        "status": "ready",
        "store": "writable",
        "listeners": {"adt": "bound"},
        "delivery": "running",
        "descriptors": "available",
        "insi": {"simulated": True, "breaker": "closed", "last_error": None, "last_error_at": None},
    }


async def test_readyz_fails_when_a_listener_is_down(start_engine: StartEngine) -> None:
    engine = await start_engine(extra=HTTP)
    await engine.listeners["adt"].stop(0)
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url(engine) + "/readyz") as answer,
    ):
        body = await answer.json()
    assert answer.status == 503
    assert body["status"] == "not ready"
    assert body["listeners"] == {"adt": "down"}
    assert body["store"] == "writable"


async def test_readyz_fails_when_the_store_takes_no_write(start_engine: StartEngine) -> None:
    engine = await start_engine(extra=HTTP)
    assert engine.store is not None
    await engine.store.close()
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url(engine) + "/readyz") as answer,
    ):
        body = await answer.json()
    assert (answer.status, body["store"]) == (503, "failed")
    engine.store = None  # closed already: the fixture's stop must not close it twice


async def test_metrics_count_acks_and_deliveries(
    start_engine: StartEngine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outbox = tmp_path_factory.mktemp("outbox")
    engine = await start_engine(accept_and_archive(outbox), extra=HTTP)
    host, port = engine.listeners["adt"].address
    client = await MllpClient.connect(host, port)
    for number in range(3):
        await client.exchange(adt(f"CTRL{number}"), 5)
    await client.exchange(adt("REFUSED", event="R01", message_type="ORU"), 5)
    await client.close()
    await until(
        lambda: (
            engine.metrics.totals("ins_engine_messages_delivered")
            == [({"route": "adt", "destination": "archive"}, 3.0)]
        )
    )
    assert len(list(outbox.iterdir())) == 3
    status, text, headers = await get(base_url(engine) + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    received = labelled(text, "ins_engine_messages_received_total", "ack_code")
    assert received == {"AA": 3, "AR": 1}
    delivered = value(
        text, "ins_engine_messages_delivered_total", route="adt", destination="archive"
    )
    assert delivered == 3
    pending = value(
        text, "ins_engine_queue_depth", route="adt", destination="archive", status="pending"
    )
    assert pending == 0
    assert value(text, "ins_engine_ack_seconds_count") == 4
    assert value(text, "ins_engine_delivery_seconds_count") == 3
    assert "CTRL" not in text, "no control id in a label"


async def test_metrics_may_require_a_bearer_token(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_METRICS_TOKEN", "scrape-secret-7Kq")
    engine = await start_engine(extra=HTTP + 'metrics_token_env = "TEST_METRICS_TOKEN"\n')
    url = base_url(engine) + "/metrics"
    assert (await get(url))[0] == 401
    assert (await get(url, Authorization="Bearer wrong"))[0] == 401
    status, text, _ = await get(url, Authorization="Bearer scrape-secret-7Kq")
    assert status == 200 and "ins_engine_messages_received" in text
    assert (await get(base_url(engine) + "/healthz"))[0] == 200, "health stays open"


def accept_and_archive(outbox: Path) -> str:
    return f'accept = ["ADT^*"]\n[[routes.destinations]]\nname = "archive"\nfile = "{outbox}"\n'


@pytest.mark.system
async def test_counters_continue_after_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\n\n{HTTP}\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n',
        encoding="utf-8",
    )
    for run, expected in ((1, 2.0), (2, 4.0)):
        engine = Engine(load_config(config))
        await engine.start()
        try:
            client = await MllpClient.connect(*engine.listeners["adt"].address)
            for number in range(2):
                await client.exchange(adt(f"RUN{run}-{number}"), 5)
            await client.close()
            _, text, _ = await get(base_url(engine) + "/metrics")
        finally:
            await engine.stop()
        received = value(text, "ins_engine_messages_received_total", route="adt", ack_code="AA")
        assert received == expected
        assert value(text, "ins_engine_ack_seconds_count") == 2, "histograms start afresh"


async def test_an_empty_metrics_token_refuses_every_scrape_and_says_so(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_METRICS_TOKEN", raising=False)
    with capture_logs() as logs:
        engine = await start_engine(extra=HTTP + 'metrics_token_env = "TEST_METRICS_TOKEN"\n')
    assert [entry["code"] for entry in logs if entry.get("code")] == ["metrics_token_env"]
    assert (await get(base_url(engine) + "/metrics", Authorization="Bearer "))[0] == 401


@pytest.mark.system
def test_an_http_address_in_use_names_the_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "engine.toml"
        config.write_text(
            f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\n\n'
            f'[http]\nlisten = "127.0.0.1:{port}"\n\n'
            '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
            f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / "out"}"\n',
            encoding="utf-8",
        )
        result = subprocess.run(
            [sys.executable, "-m", "engine", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPOSITORY,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.endswith(
        f"ins-engine run: {config}: http.listen: cannot listen on 127.0.0.1:{port} "
        "(Address already in use): is another program (or engine) listening there?\n"
    )
