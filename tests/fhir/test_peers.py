"""The FHIR destination's test peers do what its tests rely on: the FHIR server's conditional
update really creates, then updates the one match, and refuses several matches; the proxy
serves the faults it is given; the token endpoint issues and refuses; mutual TLS refuses a
client without a certificate. Synthetic identities only."""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import Any

import aiohttp
import httpx
import pytest

from tests.support.fhir_proxy import FaultProxy
from tests.support.fhir_server import FhirServer
from tests.support.token_server import TokenServer

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
IPP_SYSTEM = "urn:oid:1.2.250.1.71.4.2.7"
IDENTIFIER = f"{IPP_SYSTEM}|TEST000001"


def patient(family: str = "TESTPEER", value: str = "TEST000001") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "meta": {"profile": ["https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"]},
        "extension": [{"url": "https://example.test/StructureDefinition/x", "valueString": "y"}],
        "identifier": [{"system": IPP_SYSTEM, "value": value}],
        "name": [{"family": family, "given": ["SYNTHETIQUE"]}],
        "link": [
            {"other": {"identifier": {"system": INS_SYSTEM, "value": "0"}}, "type": "seealso"}
        ],
    }


def basic(client_id: str, secret: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def fresh_connections() -> aiohttp.ClientSession:
    """A client that opens a connection per request."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


def test_conditional_update_creates_then_updates_the_one_match(fhir_server: FhirServer) -> None:
    fhir_server.reset()

    first = fhir_server.request("PUT", f"Patient?identifier={IDENTIFIER}", patient("AVANT"))
    second = fhir_server.request("PUT", f"Patient?identifier={IDENTIFIER}", patient("APRES"))

    assert (first.status, second.status) == (201, 200)
    assert "location" in first.headers and second.headers["etag"].startswith('W/"')
    assert second.body["id"] == first.body["id"]
    [stored] = fhir_server.patients(IDENTIFIER)
    assert stored["name"][0]["family"] == "APRES"
    # what an FR Core Patient carries is kept as sent
    assert stored["meta"]["profile"] == patient()["meta"]["profile"]
    assert stored["extension"] == patient()["extension"]
    assert stored["link"] == patient()["link"]
    assert fhir_server.patients(f"{IPP_SYSTEM}|TEST000002") == []


def test_several_matches_are_refused_with_412(fhir_server: FhirServer) -> None:
    fhir_server.reset()
    for _ in range(2):
        assert fhir_server.request("POST", "Patient", patient()).status == 201

    answer = fhir_server.request("PUT", f"Patient?identifier={IDENTIFIER}", patient("NOUVEAU"))

    assert answer.status == 412
    assert answer.body["resourceType"] == "OperationOutcome"
    assert answer.body["issue"][0]["code"] == "multiple-matches"
    assert [p["name"][0]["family"] for p in fhir_server.patients(IDENTIFIER)] == ["TESTPEER"] * 2


def test_an_invalid_resource_is_refused_with_an_operation_outcome(
    fhir_server: FhirServer,
) -> None:
    fhir_server.reset()
    invalid = patient() | {"birthDate": "1990-13-45"}

    answer = fhir_server.request("PUT", f"Patient?identifier={IDENTIFIER}", invalid)

    assert answer.status == 400
    assert answer.body["resourceType"] == "OperationOutcome"
    assert answer.body["issue"][0]["expression"] == ["Patient.birthDate"]
    assert fhir_server.patients() == []


def test_conditional_delete_and_if_match(fhir_server: FhirServer) -> None:
    fhir_server.reset()
    created = fhir_server.request("PUT", f"Patient?identifier={IDENTIFIER}", patient()).body
    stale = fhir_server.request(
        "PUT", f"Patient/{created['id']}", created, headers={"If-Match": 'W/"stale"'}
    )
    assert stale.status == 412

    assert fhir_server.request("DELETE", f"Patient?identifier={IDENTIFIER}").status == 200
    assert fhir_server.patients() == []
    assert fhir_server.request("GET", f"Patient/{created['id']}").status == 404


async def test_the_proxy_serves_the_faults_it_is_given_in_order(
    fhir_proxy: FaultProxy, fhir_server: FhirServer
) -> None:
    fhir_proxy.fail_next(422)
    fhir_proxy.fail_next(503, outcome=False)
    fhir_proxy.fail_next(429, retry_after=0)
    url = f"{fhir_proxy.base_url}/Patient?identifier={IDENTIFIER}"
    answers = []
    async with fresh_connections() as client:
        for _ in range(4):
            async with client.put(url, json=patient()) as answer:
                answers.append((answer.status, answer.headers.get("Retry-After"), answer))
                if answer.status == 422:
                    outcome = await answer.json(content_type=None)
                    assert outcome["resourceType"] == "OperationOutcome"

    assert [(status, retry) for status, retry, _ in answers] == [
        (422, None), (503, None), (429, "0"), (201, None),
    ]  # fmt: skip
    assert fhir_proxy.answered() == [422, 503, 429, 201]
    assert [seen.outcome for seen in fhir_proxy.requests] == ["failed"] * 3 + ["forwarded"]
    last = fhir_proxy.requests[-1]
    assert last.method == "PUT" and last.path.startswith("/fhir/R4/Patient?")
    assert last.query == {"identifier": [IDENTIFIER]}
    assert last.body == patient() and last.headers["content-type"] == "application/json"
    assert len(fhir_server.patients()) == 1  # only the forwarded one reached the server


async def test_a_dropped_answer_after_the_server_applied_the_request(
    fhir_proxy: FaultProxy, fhir_server: FhirServer
) -> None:
    fhir_proxy.drop_next(after_upstream=True)
    # httpx, not aiohttp: aiohttp resends an idempotent request (a PUT) once when the
    # connection closes under it, which would hide the drop
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.put(
                f"{fhir_proxy.base_url}/Patient?identifier={IDENTIFIER}", json=patient()
            )

    assert fhir_proxy.answered() == [None]
    assert len(fhir_server.patients(IDENTIFIER)) == 1


async def test_a_held_request_is_answered_by_nothing_until_released(
    fhir_proxy: FaultProxy,
) -> None:
    fhir_proxy.hang_next()
    async with httpx.AsyncClient() as client:
        held = asyncio.ensure_future(client.get(f"{fhir_proxy.base_url}/Patient"))
        [seen] = await fhir_proxy.seen(1)
        assert seen.outcome == "hung" and not held.done()
        fhir_proxy.release_hung()
        with pytest.raises(httpx.RemoteProtocolError):
            await held
        assert (await client.get(f"{fhir_proxy.base_url}/Patient")).status_code == 200
    assert fhir_proxy.answered() == [None, 200]


async def test_the_token_server_issues_and_refuses(token_server: TokenServer) -> None:
    token_server.expires_in = 42
    async with aiohttp.ClientSession() as client:
        form = {"grant_type": "client_credentials", "scope": "system/Patient.write"}
        good = basic("ins-engine", "test-client-secret")
        async with client.post(token_server.token_url, data=form, headers=good) as answer:
            assert answer.status == 200
            issued = await answer.json()
        with_fields = form | {"client_id": "ins-engine", "client_secret": "test-client-secret"}
        async with client.post(token_server.token_url, data=with_fields) as answer:
            assert answer.status == 200
        wrong = basic("ins-engine", "wrong")
        async with client.post(token_server.token_url, data=form, headers=wrong) as answer:
            assert answer.status == 401
            assert (await answer.json())["error"] == "invalid_client"
            assert answer.headers["WWW-Authenticate"].startswith("Basic")
        other_grant = {"grant_type": "password"}
        async with client.post(token_server.token_url, data=other_grant, headers=good) as answer:
            assert answer.status == 400
            assert (await answer.json())["error"] == "unsupported_grant_type"

    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 42
    assert issued["scope"] == "system/Patient.write"
    assert token_server.issued == 2 and token_server.is_valid(issued["access_token"])
    assert [seen.auth for seen in token_server.requests] == ["basic", "form", "basic", "basic"]
    token_server.expire_all()
    assert not token_server.is_valid(issued["access_token"])


async def test_the_proxy_asks_for_a_bearer_token_it_issued(
    fhir_proxy: FaultProxy, token_server: TokenServer
) -> None:
    fhir_proxy.require_token(token_server)
    url = f"{fhir_proxy.base_url}/Patient"
    async with aiohttp.ClientSession() as client:
        form = {"grant_type": "client_credentials"}
        credentials = basic("ins-engine", "test-client-secret")
        async with client.post(token_server.token_url, data=form, headers=credentials) as answer:
            token = (await answer.json())["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}

        async with client.get(url) as missing:
            assert missing.status == 401
            assert missing.headers["WWW-Authenticate"] == 'Bearer realm="fhir"'
        async with client.get(url, headers={"Authorization": "Bearer unknown"}) as unknown:
            assert unknown.status == 401
            assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
        async with client.get(url, headers=bearer) as good:
            assert good.status == 200
        token_server.expire_all()
        async with client.get(url, headers=bearer) as expired:
            assert expired.status == 401

    assert [seen.outcome for seen in fhir_proxy.requests] == [
        "unauthorized", "unauthorized", "forwarded", "unauthorized",
    ]  # fmt: skip


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    fhir_mtls_proxy: FaultProxy,
) -> None:
    pki = fhir_mtls_proxy.pki
    assert pki is not None and fhir_mtls_proxy.base_url.startswith("https://127.0.0.1:")
    url = f"{fhir_mtls_proxy.base_url}/Patient"
    async with fresh_connections() as client:
        for refused in (pki.client_context(with_certificate=False), _other_ca_client(pki)):
            with pytest.raises(aiohttp.ClientError):
                async with client.get(url, ssl=refused) as answer:
                    await answer.read()
        async with client.get(url, ssl=pki.client_context()) as answer:
            assert answer.status == 200

    [seen] = fhir_mtls_proxy.requests
    assert seen.client_cn == pki.client_cn


def _other_ca_client(pki: Any) -> ssl.SSLContext:
    """Trusts the proxy, presents a certificate from a CA the proxy does not know."""
    context = ssl.create_default_context(cafile=str(pki.ca_path))
    context.load_cert_chain(pki.other_client_cert_path, pki.other_client_key_path)
    return context
