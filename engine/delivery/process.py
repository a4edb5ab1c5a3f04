"""The engine's side of its delivery process: start it, wake it, stop it, keep it running.

On a machine with more than one core the engine delivers from a second process
(`engine.app.delivery_runtime`), so that receiving, storing and acknowledging on one core and
delivering on the other do not wait for each other. The engine hands it its configuration,
wakes it when entries are routed or requeued, makes the store writes it asks for (with
SQLite, one writer: its delivered marks join the engine's group commits) and replays the
attempts it reports into its metrics. A process that dies is started again (its lanes resume
at their first pending entry: at-least-once, as after any crash); on stop the engine waits for
it to finish the messages it is sending before it closes the store, and so before another
engine may open it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import socket
import sys
import time

from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics
from engine.config.settings import Config
from engine.delivery.relay import (
    Answer,
    Ask,
    Attempts,
    Channel,
    Configure,
    Ready,
    Reconfigure,
    Stop,
    ToEngine,
    ToProcess,
    Wake,
    to_process,
)
from engine.delivery.writes import Write
from engine.errors import EngineError, StoreError
from engine.store.roles import DeliveryStore

log = get_logger("engine.delivery")
READY_TIMEOUT_S = 60.0
RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_S = 60.0  # a process that ran this long starts the delays over


class DeliveryProcess:
    """The delivery process of this engine; `start`, `wake`, `stop` as `DeliveryService`."""

    def __init__(
        self, config: Config, store: DeliveryStore, metrics: EngineMetrics, engine_id: str
    ) -> None:
        self._config = config
        self._engine_id = engine_id
        self._store = store
        self._metrics = metrics
        self._process: asyncio.subprocess.Process | None = None
        self._channel: Channel[ToProcess, ToEngine] | None = None
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self.restarts = 0

    @property
    def running(self) -> bool:
        """Whether the process runs and has said it delivers (readiness)."""
        process = self._process
        return process is not None and process.returncode is None and self._ready.is_set()

    async def start(self) -> None:
        """Start the process and wait until its lanes run."""
        self._supervisor = asyncio.create_task(self._supervise(), name="delivery process")
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await self._ready.wait()
        except TimeoutError:
            raise EngineError("the delivery process did not start (see its log lines)") from None

    def wake(self) -> None:
        """Entries were routed or requeued: the process looks at once."""
        if self._channel is not None:
            self._channel.send_once(Wake())

    def reconfigure(self, config: Config) -> None:
        """A reloaded configuration: the process delivers its routes from now on, and a
        process started again later gets it."""
        self._config = config
        if self._channel is not None:
            self._channel.send(Reconfigure(config))

    async def stop(self, grace_s: float) -> None:
        """Tell the process to stop after the messages it is sending (one being started
        gets the order as soon as it has its configuration); kill it if late."""
        self._stopping.set()
        if self._channel is not None:
            self._channel.send(Stop())
        if self._supervisor is not None:
            _, late = await asyncio.wait({self._supervisor}, timeout=grace_s + 5)
            if late:
                log.error("delivery process late to stop: killed")
                if self._process is not None and self._process.returncode is None:
                    self._process.kill()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def _supervise(self) -> None:
        """Run the process; start it again whenever it exits or cannot be started, unless
        the engine stops. The delay between starts grows with each exit and starts over
        once a process has run for STABLE_S."""
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                status: int | None = await self._run_once()
            except Exception as error:  # e.g. no process slot, no file descriptor left
                log.error("delivery process could not be started", exc_info=error)
                status = None
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STABLE_S:
                self.restarts = 0
            delay = RESTART_DELAYS_S[min(self.restarts, len(RESTART_DELAYS_S) - 1)]
            log.error(
                "delivery process exited, starting it again",
                status=status,
                delay_s=delay,
                count=self.restarts,
            )
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def _run_once(self) -> int:
        """Start the process, hand it the configuration, serve it until it ends."""
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "engine",
                "deliver",
                "--control-fd",
                str(theirs.fileno()),
                "--parent",
                str(os.getpid()),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process = process
        channel = self._channel = await to_process(ours)
        channel.send(Configure(self._config, self._engine_id))
        if self._stopping.is_set():  # stop() came while this one was being started
            channel.send(Stop())
        try:
            while (message := await channel.receive()) is not None:
                self._heard(channel, message)
        finally:
            self._ready.clear()
            self._channel = None
            channel.close()
        return await process.wait()

    def _heard(self, channel: Channel[ToProcess, ToEngine], message: ToEngine) -> None:
        match message:
            case Ask():
                task = asyncio.create_task(self._write(channel, message))
                self._writes.add(task)
                task.add_done_callback(self._writes.discard)
            case Attempts(attempts):
                for attempt in attempts:
                    self._metrics.delivery_attempted(*attempt)
            case Ready():
                self._ready.set()
                pid = self._process.pid if self._process else None
                log.info("delivery process ready", pid=pid)

    async def _write(self, channel: Channel[ToProcess, ToEngine], ask: Ask) -> None:
        """Make a write the process asked for, on the engine's store, and answer."""
        try:
            if not isinstance(ask.write, Write):
                raise StoreError("not a write the delivery process makes")
            result = await ask.write.apply(self._store)
        except Exception as error:  # handed to the process, which deals with it as its own
            channel.send(Answer(ask.number, False, _sendable(error)))
            return
        channel.send(Answer(ask.number, True, result))


def _sendable(error: Exception) -> Exception:
    """The error itself when it travels (the engine's own errors do), else its kind."""
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object, round-tripped
    except Exception:
        return StoreError(f"store write failed: {type(error).__name__}")
    return error
