"""Sending to an MLLP receiver over one persistent connection, one message at a time.

The connection is opened on the first message and kept; after any failure it is gone and
the next attempt (after the worker's back-off) opens a new one. On an ACK timeout the MLLP
client has already closed it; on a mismatched or garbled ACK this sender closes it. Either
way no answer still in flight can be read as the ACK of a later message.

A receiver may close a connection that sat idle: a close already seen is answered by
opening a new connection before sending. One that arrives while a message is being sent
makes that message go again at once on a fresh connection rather than after a back-off
delay (it may reach the receiver twice, as at-least-once allows).
"""

from __future__ import annotations

from engine.base.logs import get_logger
from engine.config.settings import DestinationSettings, parse_address
from engine.config.tls import client_context
from engine.delivery.ack_check import AckProblem, MismatchedAck, check_ack
from engine.delivery.destination import Outcome, Result
from engine.mllp.client import AckTimeout, MllpClient, MllpClientError
from engine.store.base import OutboxEntry

log = get_logger("engine.delivery")


class MllpSender:
    """`Sender` for an `mllp = "host:port"` destination."""

    def __init__(self, route: str, settings: DestinationSettings) -> None:
        assert settings.mllp is not None
        address = parse_address(settings.mllp)
        assert address is not None
        self._host, self._port = address
        self._route = route
        self._settings = settings
        self._ssl = client_context(settings.tls) if settings.tls else None
        self._client: MllpClient | None = None

    async def send(self, entry: OutboxEntry) -> Result:
        try:
            ack = await self._exchange(entry.payload)
        except MllpClientError as error:  # the client has closed the connection
            self._client = None
            return Result(Outcome.RETRY, error=str(error))
        try:
            return check_ack(ack, entry.payload)
        except AckProblem as problem:
            await self.close()
            mismatched = isinstance(problem, MismatchedAck)
            return Result(Outcome.RETRY, error=str(problem), mismatched=mismatched)

    async def _exchange(self, payload: bytes) -> bytes:
        ack_timeout = self._settings.ack_timeout_s
        client = self._client
        if client is not None and client.peer_closed:
            await client.close()
        if client is not None and not client.closed:
            try:
                return await client.exchange(payload, ack_timeout)
            except AckTimeout:
                raise
            except MllpClientError as error:
                log.info(
                    "connection lost, sending again on a new one",
                    route=self._route,
                    destination=self._settings.name,
                    error=str(error),
                )
        self._client = None
        client = await MllpClient.connect(
            self._host,
            self._port,
            ssl_context=self._ssl,
            server_hostname=self._settings.tls.server_name if self._settings.tls else None,
            connect_timeout_s=self._settings.connect_timeout_s,
        )
        self._client = client
        return await client.exchange(payload, ack_timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
