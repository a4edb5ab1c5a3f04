"""The MLLP sender against real receivers on loopback: one persistent connection, closed
before any retry when the answer is late, mismatched or garbled; TLS with a client
certificate; python-hl7's own server as a third-party downstream."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from engine.config.settings import ClientTls, DestinationSettings
from engine.delivery.destination import Outcome
from engine.delivery.mllp_sender import MllpSender
from engine.store.base import EntryStatus, OutboxEntry
from engine.store.sqlite import SqliteStore
from engine.testing.receiver import Received, Receiver, Reply, ack, ack_bytes
from tests.delivery.conftest import Route
from tests.delivery.harness import delivering, entries, eventually, route_all, store_messages
from tests.support.messages import adt
from tests.support.python_hl7 import python_hl7_receiver


def entry(control_id: str) -> OutboxEntry:
    return OutboxEntry(
        1, 1, "adt", "down", control_id, "ADT^A01", 0.0, adt(control_id), "P1",
        EntryStatus.PENDING, 0, 0.0, None,
    )  # fmt: skip


def sender(address: str, **settings: object) -> MllpSender:
    return MllpSender("adt", DestinationSettings(name="down", mllp=address, **settings))  # type: ignore[arg-type]


async def test_a_late_ack_is_never_taken_for_the_next_message() -> None:
    gave_up = asyncio.Event()

    def answer(received: Received) -> Reply:
        if received.index == 0:  # the first message's ACK comes after the sender gave up
            return Reply(ack_bytes(received.control_id), held_until=gave_up)
        return ack(received, "AE")

    async with Receiver(answer) as downstream:
        # C2's own ACK must come within the timeout too: a bound the loaded machine meets.
        mllp = sender(downstream.address, ack_timeout_s=2.0)
        first = await mllp.send(entry("C1"))
        gave_up.set()
        await downstream.wait_answered(1)  # the late AA of C1, written to a closed connection
        second = await mllp.send(entry("C2"))
        await mllp.close()
    assert (first.outcome, first.error) == (Outcome.RETRY, "no acknowledgement within 2 s")
    assert (second.outcome, second.ack_code) == (Outcome.RETRY, "AE")  # C2's own answer
    assert [m.connection for m in downstream.received] == [1, 2]


async def test_mismatched_and_garbled_acks_close_the_connection_before_the_retry() -> None:
    answers = iter([Reply(ack_bytes("OTHER")), Reply(b"garbage"), None])

    def answer(received: Received) -> Reply:
        return next(answers) or ack(received)

    async with Receiver(answer) as downstream:
        mllp = sender(downstream.address)
        results = [await mllp.send(entry("C1")) for _ in range(3)]
        await mllp.close()
    assert [r.error for r in results] == [
        "mismatched ACK: MSA-2 is not the sent MSH-10",
        "garbled ACK: not an HL7 message",
        "",
    ]
    assert [r.mismatched for r in results] == [True, False, False]  # counted towards parking
    assert results[-1].outcome is Outcome.DELIVERED
    assert [m.connection for m in downstream.received] == [1, 2, 3]


async def test_one_connection_is_kept_and_replaced_when_the_receiver_drops_it() -> None:
    async with Receiver() as downstream:
        mllp = sender(downstream.address)
        assert (await mllp.send(entry("C1"))).outcome is Outcome.DELIVERED
        assert (await mllp.send(entry("C2"))).outcome is Outcome.DELIVERED
        await downstream.drop_connections()
        assert (await mllp.send(entry("C3"))).outcome is Outcome.DELIVERED
        await mllp.close()
    assert [m.connection for m in downstream.received] == [1, 1, 2]


async def test_an_idle_connection_closed_by_the_receiver_is_not_written_to() -> None:
    async with Receiver() as downstream:
        mllp = sender(downstream.address)
        assert (await mllp.send(entry("C1"))).outcome is Outcome.DELIVERED
        await downstream.drop_connections()
        client = mllp._client
        assert client is not None
        async with asyncio.timeout(10):  # the close reaches the sender's side while it is idle
            while not client.peer_closed:  # noqa: ASYNC110 - the client offers no event
                await asyncio.sleep(0.01)
        assert (await mllp.send(entry("C2"))).outcome is Outcome.DELIVERED
        await mllp.close()
    assert [m.control_id for m in downstream.received] == ["C1", "C2"]


async def test_unreachable_receiver_is_a_retry_with_a_safe_error() -> None:
    async with Receiver() as downstream:
        address = downstream.address
    result = await sender(address, connect_timeout_s=2.0).send(entry("C1"))
    assert result.outcome is Outcome.RETRY
    assert result.error.startswith(f"connect to {address} failed")


async def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    authority.configure_trust(server)
    server.verify_mode = ssl.CERT_REQUIRED
    client = authority.issue_cert("ins-engine")
    authority.cert_pem.write_to_path(tmp_path / "ca.pem")
    client.cert_chain_pems[0].write_to_path(tmp_path / "client.pem")
    client.private_key_pem.write_to_path(tmp_path / "client.key")
    tls = ClientTls(
        ca=str(tmp_path / "ca.pem"),
        cert=str(tmp_path / "client.pem"),
        key=str(tmp_path / "client.key"),
    )
    async with Receiver(ssl_context=server) as downstream:
        with_certificate = sender(downstream.address, tls=tls)
        delivered = await with_certificate.send(entry("C1"))
        await with_certificate.close()
        without = sender(downstream.address, tls=ClientTls(ca=str(tmp_path / "ca.pem")))
        refused = await without.send(entry("C2"))
    assert delivered.outcome is Outcome.DELIVERED
    assert refused.outcome is Outcome.RETRY
    assert downstream.control_ids == ["C1"]


@pytest.mark.system
async def test_python_hl7_server_as_the_downstream(store: SqliteStore, route: Route) -> None:
    expected = [f"H{n:03d}" for n in range(200)]
    async with python_hl7_receiver() as downstream:
        routes = [route(mllp=f"127.0.0.1:{downstream.port}")]
        await store_messages(store, "adt", [adt(c) for c in expected])
        await route_all(store, routes)
        async with delivering(store, *routes):
            await eventually(lambda: _delivered(store, len(expected)))
    assert downstream.control_ids == expected


async def _delivered(store: SqliteStore, count: int) -> bool:
    return len(await entries(store, EntryStatus.DELIVERED)) == count
