"""The engine speaks systemd's notify protocol: READY=1 once every listener is bound,
WATCHDOG=1 at half the watchdog interval, STOPPING=1 when it stops. The socket here is a
real unix datagram socket, as systemd's is."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.app.systemd import Notifier
from tests.support.engine_process import EngineProcess


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def test_notify_sends_one_datagram(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    assert Notifier({"NOTIFY_SOCKET": path}).notify("READY=1", "STATUS=serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_abstract_socket_address() -> None:
    name = f"ins-engine-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": f"@{name}"}).notify("STOPPING=1")
        assert sock.recv(4096) == b"STOPPING=1"


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).notify("READY=1") is False


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}, 0.2),
        ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert Notifier(environ).watchdog_s == expected


@pytest.mark.system
async def test_engine_notifies_ready_watchdog_and_stopping(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\nlog_format = "json"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / "out"}"\n',
        encoding="utf-8",
    )
    engine = EngineProcess(config, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    await engine.start()
    try:
        received = [await asyncio.to_thread(sock.recv, 4096) for _ in range(3)]
        ready = [datagram for datagram in received if datagram.startswith(b"READY=1")]
        assert ready == [b"READY=1\nSTATUS=serving 1 route(s)"]
        # READY comes after the listeners are bound: both accept connections now.
        host, port = engine.address("adt")
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        http_host, _, http_port = engine.http_address().removeprefix("http://").rpartition(":")
        _, writer = await asyncio.open_connection(http_host, int(http_port))
        writer.close()
        pings = [datagram for datagram in received if datagram == b"WATCHDOG=1"]
        pings.append(await asyncio.to_thread(sock.recv, 4096))
        assert pings[-1] == b"WATCHDOG=1"
        assert len(pings) >= 2
    finally:
        assert await engine.terminate() == 0
    sock.settimeout(0)
    rest = []
    while True:
        try:
            rest.append(sock.recv(4096))
        except BlockingIOError:
            break
    assert b"STOPPING=1" in rest
    assert rest[-1] == b"STOPPING=1", "nothing is sent once stopping"
