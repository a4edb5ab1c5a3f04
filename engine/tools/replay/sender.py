"""Sending replayed files over MLLP: N connections, each taking whole files.

A connection sends one message at a time and waits for its ACK, so the order within a file is
kept whatever N is. When a message's fate is unknown (no ACK in time, an ACK for another
message, an answer that is no ACK, a lost connection) the connection is closed, so that a
late ACK is never read as the next one's, and the rest of that file is not sent: later
messages of a patient must not overtake one that may not have been applied. A connection
that cannot be opened stops the run.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

import structlog

from engine.hl7.ack import AckCode
from engine.mllp.client import AckTimeout, MllpClient, MllpClientError
from engine.tools.replay.acks import AckFormatError, read_ack
from engine.tools.replay.files import ReplayFile, ReplayMessage
from engine.tools.replay.pacing import Pacer

log = structlog.get_logger("replay")


class Failure(StrEnum):
    """Outcomes of a message that got no usable acknowledgement."""

    TIMEOUT = "timeout"
    MISMATCH = "mismatch"  # MSA-2 is not the MSH-10 sent
    INVALID_ACK = "invalid_ack"
    CONNECTION = "connection_error"
    NOT_SENT = "not_sent"


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one message; `text` is MSA-3 or the engine's own error text."""

    message: ReplayMessage
    outcome: AckCode | Failure
    text: str = ""
    latency_s: float | None = None


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    connect_timeout_s: float = 10.0

    @property
    def peer(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


async def send_files(
    files: Sequence[ReplayFile],
    target: Target,
    on_result: Callable[[Result], None],
    *,
    connections: int = 1,
    rate: float | None = None,
    ack_timeout_s: float = 30.0,
) -> None:
    """Send every message of `files`, calling `on_result` once per message, in file order."""
    run = _Run(iter(files), target, on_result, ack_timeout_s, Pacer(rate) if rate else None)
    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, min(connections, len(files)))):
            group.create_task(run.connection())


class _Run:
    """State shared by the connections: the files still to take, the pace, the stop flag."""

    def __init__(
        self,
        files: Iterator[ReplayFile],
        target: Target,
        on_result: Callable[[Result], None],
        ack_timeout_s: float,
        pacer: Pacer | None,
    ) -> None:
        self._files = files
        self._target = target
        self._on_result = on_result
        self._ack_timeout_s = ack_timeout_s
        self._pacer = pacer
        self._stop_reason: str | None = None

    async def connection(self) -> None:
        client: MllpClient | None = None
        try:
            for file in self._files:  # a shared iterator: each file goes to one connection
                for index, message in enumerate(file.messages):
                    if self._stop_reason is None and (client is None or client.closed):
                        client = await self._connect()
                    if self._stop_reason is not None:
                        self._skip(file.messages[index:], self._stop_reason)
                        break
                    assert client is not None  # _connect sets the stop reason when it fails
                    result = await self._send(client, message)
                    self._on_result(result)
                    if isinstance(result.outcome, Failure):
                        await client.close()
                        self._skip(
                            file.messages[index + 1 :],
                            f"message {message.position} of this file got no usable ACK",
                        )
                        break
        finally:
            if client is not None:
                await client.close()

    async def _connect(self) -> MllpClient | None:
        target = self._target
        try:
            return await MllpClient.connect(
                target.host,
                target.port,
                ssl_context=target.ssl_context,
                connect_timeout_s=target.connect_timeout_s,
            )
        except MllpClientError as error:
            log.error("replay.connect_failed", peer=target.peer, error=str(error))
            self._stop_reason = self._stop_reason or str(error)
            return None

    async def _send(self, client: MllpClient, message: ReplayMessage) -> Result:
        if self._pacer is not None:
            await asyncio.sleep(self._pacer.reserve(time.monotonic()))
        started = time.perf_counter()
        try:
            answer = await client.exchange(message.payload, self._ack_timeout_s)
        except AckTimeout as error:
            return self._failed(message, Failure.TIMEOUT, str(error))
        except MllpClientError as error:
            return self._failed(message, Failure.CONNECTION, str(error))
        latency_s = time.perf_counter() - started
        try:
            ack = read_ack(answer)
        except AckFormatError as error:
            return self._failed(message, Failure.INVALID_ACK, str(error))
        if ack.control_id != message.control_id:
            return self._failed(
                message, Failure.MISMATCH, f"MSA-2 {ack.control_id[:40]!r} is not the MSH-10 sent"
            )
        if not ack.accepted:
            log.warning(
                "replay.not_accepted",
                control_id=message.control_id,
                message_type=message.message_type,
                code=ack.code.value,
                duration_ms=round(latency_s * 1000, 3),
            )
        return Result(message, ack.code, ack.text, latency_s)

    def _failed(self, message: ReplayMessage, failure: Failure, text: str) -> Result:
        log.warning(
            "replay.no_usable_ack",
            control_id=message.control_id,
            message_type=message.message_type,
            outcome=failure.value,
            error=text,
            peer=self._target.peer,
        )
        return Result(message, failure, text)

    def _skip(self, messages: Sequence[ReplayMessage], reason: str) -> None:
        for message in messages:
            self._on_result(Result(message, Failure.NOT_SENT, reason))
