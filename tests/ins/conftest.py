"""Shared pieces: simulators on real loopback sockets, certificates made on the spot."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from engine.ins.simulator.dataset import public_test_persons
from engine.ins.simulator.handler import InsiSimulator
from engine.ins.simulator.server import RunningSimulator, server_ssl_context, start_server
from engine.ins.soap.headers import CallerIdentity

CALLER = CallerIdentity(
    idam="IDAM-TEST-0001",
    software_name="ins-engine",
    software_version="0.1.0",
    instance_id="0f8fad5b-d9cb-469f-a165-70867728950e",
    emitter="SERVICE-TEST",
)
PKCS12_PASSWORD = "pkcs12-secret-Zq9"


def fixed_ids() -> Callable[[], uuid.UUID]:
    """A deterministic uuid4 stand-in: 00000000-…-000000000001, …02, …"""
    counter = iter(range(1, 1_000_000))
    return lambda: uuid.UUID(int=next(counter))


FIXED_NOW = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


@pytest.fixture
def simulator() -> InsiSimulator:
    return InsiSimulator(public_test_persons())


@pytest.fixture
async def http_simulator(simulator: InsiSimulator) -> AsyncIterator[RunningSimulator]:
    server = await start_server(simulator, "127.0.0.1", 0)
    yield server
    await server.aclose()


@dataclass
class Pki:
    """Files of a test PKI: one CA signs the server and the client certificates."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_p12: Path
    wrong_cn_cert: Path
    wrong_cn_key: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA(organization_name="IGC-SANTE TEST")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    client = ca.issue_cert(
        "insi-client.test", common_name="INSI-AUTO", organization_unit_name="CH-TEST-URGENCES"
    )
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    wrong = ca.issue_cert(
        "insi-client.test", common_name="SERVEUR-WEB", organization_unit_name="CH-TEST-URGENCES"
    )
    wrong.cert_chain_pems[0].write_to_path(str(folder / "wrong.pem"))
    wrong.private_key_pem.write_to_path(str(folder / "wrong.key"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    bundle = pkcs12.serialize_key_and_certificates(
        b"client",
        key,  # type: ignore[arg-type]
        x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes()),
        None,
        serialization.BestAvailableEncryption(PKCS12_PASSWORD.encode()),
    )
    (folder / "client.p12").write_bytes(bundle)
    return Pki(
        folder / "ca.pem",
        folder / "server.pem",
        folder / "server.key",
        folder / "client.pem",
        folder / "client.key",
        folder / "client.p12",
        folder / "wrong.pem",
        folder / "wrong.key",
    )


@pytest.fixture
async def tls_simulator(simulator: InsiSimulator, pki: Pki) -> AsyncIterator[RunningSimulator]:
    context = server_ssl_context(str(pki.server_cert), str(pki.server_key), str(pki.ca))
    server = await start_server(simulator, "127.0.0.1", 0, context)
    yield server
    await server.aclose()
