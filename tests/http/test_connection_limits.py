"""The HTTP listener's cap and deadlines, over real sockets against an engine in this process.

Each timeout is configured small and the test waits (bounded) for the engine to close the
connection; every other limit is set far above the bound, so that only the mechanism under
test can close it in time.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme
from structlog.testing import capture_logs

from engine.app.runtime import Engine
from engine.errors import ConfigError
from tests.conftest import StartEngine
from tests.support.metrics import value

BOUND_S = 10.0  # far below every timeout not under test (60 s)
GET = b"GET /healthz HTTP/1.1\r\nHost: engine\r\n\r\n"


def http(**keys: object) -> str:
    settings = {"header_timeout_s": 60, "body_timeout_s": 60, "idle_timeout_s": 60, **keys}
    lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
    return f'[http]\nlisten = "127.0.0.1:0"\n{lines}'


async def connect(engine: Engine) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert engine.http is not None
    return await asyncio.open_connection(*engine.http.address)


async def closed_by_engine(reader: asyncio.StreamReader) -> bytes:
    """Everything the engine sent until it closed the connection (bounded)."""
    received = b""
    async with asyncio.timeout(BOUND_S):
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


async def answer(reader: asyncio.StreamReader) -> bytes:
    """One answer's status line and headers (the health checks' bodies are small)."""
    async with asyncio.timeout(BOUND_S):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
    return head


def closed(engine: Engine, reason: str) -> float | None:
    text = engine.metrics.exposition().decode()
    return value(text, "ins_engine_http_connections_closed_total", reason=reason)


async def test_silent_and_half_sent_requests_are_closed_after_header_timeout(
    start_engine: StartEngine,
) -> None:
    engine = await start_engine(extra=http(header_timeout_s=0.3))
    silent, silent_writer = await connect(engine)
    half, half_writer = await connect(engine)
    half_writer.write(b"GET /healthz HTTP/1.1\r\nHost: eng")
    assert await closed_by_engine(silent) == b""
    assert await closed_by_engine(half) == b""
    reader, writer = await connect(engine)
    writer.write(GET)
    assert (await answer(reader)).startswith(b"HTTP/1.1 200")
    assert closed(engine, "header_timeout") == 2
    for each in (silent_writer, half_writer, writer):
        each.close()


async def test_a_slow_body_is_cut_after_body_timeout(start_engine: StartEngine) -> None:
    engine = await start_engine(extra=http(body_timeout_s=0.3))
    reader, writer = await connect(engine)
    writer.write(
        b"POST /api/v1/enrich HTTP/1.1\r\nHost: engine\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 1000\r\n\r\nMSH|^~\\&|"
    )
    assert b"200" not in await closed_by_engine(reader)
    assert closed(engine, "body_timeout") == 1
    writer.close()


async def test_a_kept_alive_connection_serves_requests_then_closes_once_idle(
    start_engine: StartEngine,
) -> None:
    engine = await start_engine(extra=http(idle_timeout_s=0.5))
    reader, writer = await connect(engine)
    for _ in range(3):
        writer.write(GET)
        assert (await answer(reader)).startswith(b"HTTP/1.1 200")
    assert await closed_by_engine(reader) == b""
    assert closed(engine, "idle_timeout") == 1
    writer.close()


async def test_connections_beyond_max_connections_are_closed_at_once_and_logged_once(
    start_engine: StartEngine,
) -> None:
    with capture_logs() as logs:
        engine = await start_engine(extra=http(max_connections=2))
        held = [await connect(engine) for _ in range(2)]
        for _ in range(3):
            beyond, beyond_writer = await connect(engine)
            assert await closed_by_engine(beyond) == b""
            beyond_writer.close()
    assert [entry["event"] for entry in logs if "max_connections" in entry["event"]] == [
        "http connections at max_connections: new ones are closed at once"
    ]
    assert closed(engine, "max_connections") == 3
    held[0][1].close()
    await closed_by_engine(held[0][0])
    async with asyncio.timeout(BOUND_S):  # the engine sees the close, then serves a new one
        while True:
            reader, writer = await connect(engine)
            writer.write(GET)
            try:
                head = await answer(reader)
                break
            except (asyncio.IncompleteReadError, ConnectionResetError):
                writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()
    held[1][1].close()


async def test_a_tls_handshake_counts_against_max_connections(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "http.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "http.key"))
    tls = f'[http.tls]\ncert = "{tmp_path / "http.pem"}"\nkey = "{tmp_path / "http.key"}"\n'
    engine = await start_engine(extra=http(max_connections=1) + tls)
    assert engine.http is not None
    _, no_handshake = await connect(engine)  # says nothing: its handshake never ends
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        async with asyncio.timeout(BOUND_S):
            await asyncio.open_connection(*engine.http.address, ssl=context)
    assert closed(engine, "max_connections") == 1
    no_handshake.close()


async def test_reserved_fds_leaving_the_http_listener_nothing_names_the_key(
    start_engine: StartEngine,
) -> None:
    with pytest.raises(ConfigError) as raised:
        await start_engine(extra=http(reserved_fds=10**9))
    assert raised.value.key == "http.reserved_fds"
    assert raised.value.file.endswith("config0.toml")
    assert "open-file limit" in raised.value.expected
