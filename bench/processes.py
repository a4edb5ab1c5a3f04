"""Starting the servers under test as separate processes, so the load generator's own CPU
use is not charged to them (each side gets its own core on a 2-core machine)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout_s} s")


@contextlib.contextmanager
def server_process(args: list[str], port: int) -> Iterator[psutil.Process]:
    """Run `python args...` until the block ends; yields the process for RSS readings."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for_port(port, process)
        yield psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def engine_config(
    folder: Path,
    port: int,
    route_extra: str = "",
    extra: str = "",
    store: str | None = None,
    engine_keys: str = "",
) -> Path:
    """A configuration file for an engine under benchmark, its store in `folder` unless
    `store` names one (a PostgreSQL store several engines share); `engine_keys` are more
    `[engine]` keys."""
    path = folder / f"engine-{port}.toml"
    store = store or f"sqlite:///{folder}/engine-{port}.db"
    path.write_text(
        f'[engine]\nstore = "{store}"\nlog_format = "json"\n{engine_keys}\n'
        f"{extra}\n"
        f'[[routes]]\nname = "bench"\nlisten = "127.0.0.1:{port}"\n{route_extra}\n',
        encoding="utf-8",
    )
    return path
