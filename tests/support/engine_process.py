"""An `ins-engine run` subprocess for tests that need the real thing (signals, restarts).

    engine = EngineProcess(config_file)
    await engine.start()                 # returns once it logged "engine started"
    host, port = engine.address("adt")   # from its "listener ready" line (port 0 works)
    engine.send_signal(signal.SIGHUP)    # reload its configuration
    engine.kill()                        # SIGKILL, as a crash
    EngineProcess(config_file, nofile=256)  # run under that open-file limit (RLIMIT_NOFILE)
    await engine.terminate()             # SIGTERM, clean stop; returns the exit status

The engine's stderr (JSON log lines: set `log_format = "json"`) is read by a thread into
`records`, so the pipe never fills and a test can look at what was logged. Waits are
bounded by `timeout_s` so a broken engine fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]


class EngineProcess:
    def __init__(
        self,
        config: Path,
        command: list[str] | None = None,
        cwd: Path = REPOSITORY,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> None:
        """`command` runs instead of this checkout's engine (e.g. an installed `ins-engine`);
        `env` adds environment variables; `nofile` lowers the open-file limit."""
        self.config = config
        self._command = command or [sys.executable, "-m", "engine"]
        self._cwd = cwd
        self.env = env or {}
        self._nofile = nofile
        self.records: list[dict[str, Any]] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._started = threading.Event()
        self._reader: threading.Thread | None = None

    async def start(self, timeout_s: float = 30.0) -> None:
        """Start (or restart, after `kill`) the engine and wait until it serves."""
        self._spawn()
        started = await asyncio.to_thread(self._started.wait, timeout_s)
        if not started:
            self.kill()
            raise AssertionError(f"engine did not start: {self.records[-5:]}")

    def address(self, route: str) -> tuple[str, int]:
        """The address the route's listener bound, from the latest run's log."""
        for record in reversed(self.records):
            if record.get("event") == "listener ready" and record.get("route") == route:
                host, _, port = record["listen"].rpartition(":")
                return host, int(port)
        raise AssertionError(f"no listener ready for route {route}")

    def http_address(self) -> str:
        """`http://host:port` of the HTTP listener, from the latest run's log."""
        for record in reversed(self.records):
            if record.get("event") == "http listener ready":
                return f"http://{record['listen']}"
        raise AssertionError("no http listener ready")

    def logged(self, event: str) -> list[dict[str, Any]]:
        """Records whose event is `event`, oldest first."""
        return [record for record in self.records if record.get("event") == event]

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def send_signal(self, signum: int) -> None:
        """Send `signum` (SIGHUP: reload the configuration)."""
        assert self._process is not None
        self._process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: the engine gets no chance to finish anything."""
        if self._process is not None and self.running:
            self._process.send_signal(signal.SIGKILL)
        self._reap()

    async def terminate(self, timeout_s: float = 30.0, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or `signum`) and wait for a clean exit; returns the exit status."""
        assert self._process is not None
        self._process.send_signal(signum)
        try:
            status = await asyncio.to_thread(self._process.wait, timeout_s)
        finally:
            self.kill()
        return status

    async def __aenter__(self) -> EngineProcess:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.kill()

    def _spawn(self) -> None:
        self._started.clear()
        self._process = subprocess.Popen(
            [*self._command, "run", "--config", str(self.config)],
            cwd=self._cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            preexec_fn=None if self._nofile is None else self._limit_files,
        )
        self._reader = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        self._reader.start()

    def _limit_files(self) -> None:
        assert self._nofile is not None
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self._nofile, hard))

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            assert self._process.stderr is not None
            if self._reader is not None:
                self._reader.join()
            self._process.stderr.close()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"event": "(not JSON)", "text": line.decode(errors="replace")}
            self.records.append(record)
            if record.get("event") == "engine started":
                self._started.set()
