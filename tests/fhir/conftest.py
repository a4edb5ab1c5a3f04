"""The FHIR destination's test peers, on loopback: a real FHIR R4 server (Node, medplum's
router; one for the whole run, or for each worker of `pytest -n`), a proxy in front of it
that tests program to fail, hang or drop, optionally over mutual TLS, and an OAuth 2 token
endpoint. See tests/support/fhir_*.py and tests/support/token_server.py.

A test that takes `fhir_server` (directly or through a proxy) is marked `system`, so
`make test-fast` leaves it out; without `node` it is skipped, except in CI, where
`make test` installs Node and the server's packages and their absence is an error.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.fhir_proxy import FaultProxy, Pki
from tests.support.fhir_server import FhirServer, Unavailable
from tests.support.token_server import TokenServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "fhir_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirServer]:
    """The FHIR server, started at its first use (about two seconds), stopped at the end.
    Shared by the whole run (by a worker's tests under `pytest -n`): a test that uses it
    directly calls `reset()` first."""
    try:
        server = FhirServer.start()
    except Unavailable as missing:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(missing))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fhir_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, the mutual-TLS proxy's certificate and a client certificate, as PEM files."""
    return Pki.create(tmp_path_factory.mktemp("fhir-pki"))


@pytest.fixture
async def fhir_proxy(fhir_server: FhirServer) -> AsyncIterator[FaultProxy]:
    """A plain-HTTP FaultProxy in front of the FHIR server, emptied for this test."""
    fhir_server.reset()
    proxy = await FaultProxy.start(fhir_server.url)
    yield proxy
    await proxy.close()


@pytest.fixture
async def fhir_mtls_proxy(fhir_server: FhirServer, fhir_pki: Pki) -> AsyncIterator[FaultProxy]:
    """A FaultProxy over HTTPS that requires a client certificate from `fhir_pki`'s CA
    (`proxy.pki`: ca_path, client_cert_path, client_key_path), emptied for this test."""
    fhir_server.reset()
    proxy = await FaultProxy.start(fhir_server.url, pki=fhir_pki)
    yield proxy
    await proxy.close()


@pytest.fixture
async def token_server() -> AsyncIterator[TokenServer]:
    """An OAuth 2 client-credentials token endpoint for client `ins-engine` with secret
    `test-client-secret`, tokens announced for 300 s (`expires_in`, changeable)."""
    server = await TokenServer.start()
    yield server
    await server.close()
