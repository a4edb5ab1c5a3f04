"""Client ↔ simulator over real sockets: plain HTTP on loopback, HTTPS with mutual TLS."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from structlog.testing import capture_logs

from engine.ins.errors import InsiConfigurationError
from engine.ins.oids import InsOid
from engine.ins.outcome import SearchStatus
from engine.ins.service import open_insi_service
from engine.ins.settings import InsiSettings
from engine.ins.simulator.handler import InsiSimulator
from engine.ins.simulator.server import RunningSimulator, server_ssl_context, start_server
from engine.ins.tls import build_tls
from engine.ins.traits import IdentityTraits
from tests.ins.conftest import PKCS12_PASSWORD, Pki

DOMINIQUE = IdentityTraits("ADRTROIS", ("DOMINIQUE",), "F", dt.date(1997, 2, 26), "2A020")


async def search(settings: InsiSettings, traits: IdentityTraits = DOMINIQUE):
    service = await open_insi_service(settings)
    try:
        return await service.search(traits)
    finally:
        await service.aclose()


async def test_a_route_with_a_loopback_http_url_uses_the_client(
    http_simulator: RunningSimulator, simulator: InsiSimulator
) -> None:
    outcome = await search(InsiSettings(url=http_simulator.url, idam="IDAM-1"))
    assert outcome.status is SearchStatus.FOUND
    assert outcome.ins is not None and str(outcome.ins.matricule) == "297022A02077878"
    assert outcome.ins.oid is InsOid.NIR
    assert outcome.returned_traits is not None
    assert outcome.returned_traits.birth_place == "2A020"
    assert outcome.calls == 1 and simulator.requests == 1
    assert outcome.called_at is not None and outcome.called_at.tzinfo is dt.UTC
    assert outcome.simulated


async def test_a_simulator_answer_is_marked_simulated_even_when_not_configured_so(
    http_simulator: RunningSimulator,
) -> None:
    settings = InsiSettings(url=http_simulator.url, simulator=False, idam="IDAM-1")
    outcome = await search(settings)
    assert outcome.status is SearchStatus.FOUND and outcome.simulated


def tls_settings(server: RunningSimulator, pki: Pki, **changes: object) -> InsiSettings:
    values: dict[str, object] = {
        "url": server.url,
        "idam": "IDAM-1",
        "ca": str(pki.ca),
        "cert": str(pki.client_cert),
        "key": str(pki.client_key),
    }
    values.update(changes)
    return InsiSettings(**values)  # type: ignore[arg-type]


async def test_mutual_tls_with_pem_files(tls_simulator: RunningSimulator, pki: Pki) -> None:
    assert tls_simulator.url.startswith("https://")
    outcome = await search(tls_settings(tls_simulator, pki))
    assert outcome.status is SearchStatus.FOUND


async def test_mutual_tls_with_a_pkcs12_bundle_and_its_password_from_the_environment(
    tls_simulator: RunningSimulator, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_INSI_P12_PASSWORD", PKCS12_PASSWORD)
    settings = tls_settings(
        tls_simulator,
        pki,
        cert=None,
        key=None,
        pkcs12=str(pki.client_p12),
        pkcs12_password_env="TEST_INSI_P12_PASSWORD",
    )
    assert PKCS12_PASSWORD not in repr(settings)
    outcome = await search(settings)
    assert outcome.status is SearchStatus.FOUND


async def test_a_pkcs12_password_missing_or_wrong_is_a_configuration_error(
    tls_simulator: RunningSimulator, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tls_settings(
        tls_simulator,
        pki,
        cert=None,
        key=None,
        pkcs12=str(pki.client_p12),
        pkcs12_password_env="TEST_INSI_P12_PASSWORD",
    )
    monkeypatch.delenv("TEST_INSI_P12_PASSWORD", raising=False)
    with pytest.raises(InsiConfigurationError, match="TEST_INSI_P12_PASSWORD"):
        await open_insi_service(settings)
    monkeypatch.setenv("TEST_INSI_P12_PASSWORD", "not-the-password-4x")
    with pytest.raises(InsiConfigurationError) as caught:
        await open_insi_service(settings)
    assert "not-the-password-4x" not in str(caught.value)


def test_the_emitter_defaults_to_the_certificate_ou(pki: Pki) -> None:
    settings = InsiSettings(
        url="https://127.0.0.1:1/lps",
        cert=str(pki.client_cert),
        key=str(pki.client_key),
        ca=str(pki.ca),
    )
    assert build_tls(settings).organisation_unit == "CH-TEST-URGENCES"


async def test_a_certificate_whose_cn_is_not_insi_auto_is_refused_and_not_retried(
    tls_simulator: RunningSimulator, pki: Pki, simulator: InsiSimulator
) -> None:
    settings = tls_settings(
        tls_simulator, pki, cert=str(pki.wrong_cn_cert), key=str(pki.wrong_cn_key)
    )
    with capture_logs() as logs:
        outcome = await search(settings)
    assert outcome.status is SearchStatus.CONFIGURATION_ERROR
    assert outcome.detail == "DESIR_560"
    assert outcome.calls == 1 and simulator.requests == 1
    assert any(entry["log_level"] == "error" and entry.get("code") == "DESIR_560" for entry in logs)


async def test_no_client_certificate_fails_the_tls_12_handshake_as_configuration(
    simulator: InsiSimulator, pki: Pki
) -> None:
    # With TLS 1.2 the server refuses inside the handshake and the client reads the alert.
    # (With TLS 1.3 it refuses after, and the client may only see a reset: a network error.)
    context = server_ssl_context(str(pki.server_cert), str(pki.server_key), str(pki.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    server = await start_server(simulator, "127.0.0.1", 0, context)
    try:
        outcome = await search(tls_settings(server, pki, cert=None, key=None))
    finally:
        await server.aclose()
    assert outcome.status is SearchStatus.CONFIGURATION_ERROR
    assert outcome.detail == "tls"
    assert simulator.requests == 0


async def test_an_untrusted_server_is_a_tls_configuration_error(
    tls_simulator: RunningSimulator, pki: Pki
) -> None:
    outcome = await search(tls_settings(tls_simulator, pki, ca=str(pki.client_cert)))
    assert outcome.status is SearchStatus.CONFIGURATION_ERROR
    assert outcome.detail == "tls"


async def test_without_url_the_in_process_simulator_is_used_and_logged_simulated() -> None:
    with capture_logs() as logs:
        outcome = await search(InsiSettings())
    assert outcome.status is SearchStatus.FOUND and outcome.simulated
    assert any("SIMULATED" in entry["event"] and entry["log_level"] == "warning" for entry in logs)
    assert all(entry.get("simulated") is True for entry in logs if "result" in entry["event"])
