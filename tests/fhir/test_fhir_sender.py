"""The fhir destination's sender against a real FHIR server (medplum's router, in Node),
through a proxy the tests make fail: ITI-104 semantics, what each answer does to the
queue entry, OAuth 2 client credentials and mutual TLS."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.config.settings import ClientTls, DestinationSettings, RouteSettings
from engine.delivery.destination import Outcome, Result
from engine.fhir import profiles
from engine.fhir.feed import OLDER, SOURCE_EVENT
from engine.fhir.oauth import MARGIN_S
from engine.fhir.sender import FhirSender
from engine.fhir.settings import FhirSettings, OAuthSettings
from engine.store.base import EntryStatus, OutboxEntry
from engine.tools.replay.reader import read_messages
from tests.support.fhir_proxy import FaultProxy
from tests.support.fhir_server import FhirServer
from tests.support.token_server import TokenServer

SAMPLES = Path(__file__).resolve().parents[2] / "hl7_samples"
LOCAL = "urn:oid:1.2.250.1.999.1.1"
SECRET_ENV = "INS_ENGINE_TEST_FHIR_SECRET"
_ids = itertools.count(1)


def sample(name: str, *changes: tuple[str, str]) -> bytes:
    """One sample message's bytes, with each (old, new) text replaced (PI, times, events)."""
    (message,) = read_messages((SAMPLES / name).read_bytes()).messages
    text = message.payload.decode("latin-1")
    for old, new in changes:
        text = text.replace(old, new)
    return text.encode("latin-1")


def entry(payload: bytes) -> OutboxEntry:
    number = next(_ids)
    return OutboxEntry(
        number, number, "adt", "eds", f"C{number}", "ADT", 0.0, payload, None,
        EntryStatus.PENDING, 0, 0.0, None,
    )  # fmt: skip


SenderFactory = Callable[..., FhirSender]


@pytest.fixture
async def open_sender() -> AsyncIterator[SenderFactory]:
    senders: list[FhirSender] = []

    def open_(base_url: str, tls: ClientTls | None = None, **keys: Any) -> FhirSender:
        fhir = FhirSettings(base_url, **keys)
        destination = DestinationSettings(
            "eds", kind_tables={"fhir": fhir}, tls=tls, ack_timeout_s=2.0, connect_timeout_s=2.0
        )
        sender = FhirSender(RouteSettings("adt", "127.0.0.1:0"), destination)
        senders.append(sender)
        return sender

    yield open_
    for sender in senders:
        await sender.close()


async def send(sender: FhirSender, payload: bytes) -> Result:
    return await sender.send(entry(payload))


def identifiers(patient: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (
            identifier.get("use", ""),
            identifier["type"]["coding"][0]["code"],
            identifier["system"],
            identifier["value"],
        )
        for identifier in patient["identifier"]
    ]


def source_time(patient: dict[str, Any]) -> str:
    (stamp,) = [e for e in patient["extension"] if e["url"] == SOURCE_EVENT]
    return str(stamp["extension"][0]["valueString"])


async def test_one_patient_per_local_identifier_and_an_older_event_never_wins(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    sender = open_sender(fhir_proxy.base_url)
    created = await send(sender, sample("09_a31_vali_ins_verified.hl7"))
    assert (created.outcome, created.ack_code) == (Outcome.DELIVERED, "201")
    later = sample(
        "09_a31_vali_ins_verified.hl7", ("|20240315", "|20240316"), ("ADRUN", "ADRUN-MARTIN")
    )
    updated = await send(sender, later)
    assert (updated.outcome, updated.ack_code) == (Outcome.DELIVERED, "200")
    replayed = await send(sender, sample("09_a31_vali_ins_verified.hl7"))  # the older event
    assert (replayed.outcome, replayed.ack_code) == (Outcome.DELIVERED, OLDER)
    (patient,) = fhir_server.patients(f"{LOCAL}|800009")
    assert patient["name"][0]["family"] == "ADRUN-MARTIN"
    assert source_time(patient).startswith("20240316")
    assert len(fhir_server.patients()) == 1
    writes = [seen for seen in fhir_proxy.requests if seen.method == "PUT"]
    assert len(writes) == 2  # the older event was read, not written


async def test_a_qualified_identity_is_an_fr_core_patient_ins_and_others_carry_no_ins(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    sender = open_sender(fhir_proxy.base_url)
    assert (await send(sender, sample("09_a31_vali_ins_verified.hl7"))).ack_code == "201"
    assert (await send(sender, sample("36_a28_prov_ins_in_pid2.hl7"))).ack_code == "201"
    (qualified,) = fhir_server.patients(f"{LOCAL}|800009")
    assert qualified["meta"]["profile"] == [profiles.pinned(profiles.PATIENT_INS_PROFILE)]
    assert ("official", "INS-NIR", "urn:oid:1.2.250.1.213.1.4.8", "275126322074974") in (
        identifiers(qualified)
    )
    (provisional,) = fhir_server.patients(f"{LOCAL}|800047")
    assert provisional["meta"]["profile"] == [profiles.pinned(profiles.PATIENT_PROFILE)]
    assert identifiers(provisional) == [("usual", "PI", LOCAL, "800047")]


async def test_a_merge_retires_the_absorbed_record_replaced_by_the_survivor(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    sender = open_sender(fhir_proxy.base_url)
    absorbed = sample(
        "06_a05_vali_found_corsica.hl7", ("|800006", "|800119"), ("|20240315", "|20240314")
    )
    assert (await send(sender, absorbed)).outcome is Outcome.DELIVERED
    merged = await send(sender, sample("19_a40_merge.hl7"))
    assert merged.outcome is Outcome.DELIVERED, merged.error
    (survivor,) = fhir_server.patients(f"{LOCAL}|800019")
    (retired,) = fhir_server.patients(f"{LOCAL}|800119")
    assert survivor.get("active") is not False
    assert retired["active"] is False
    assert retired["link"] == [
        {"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}
    ]
    assert retired["birthDate"]  # the server's record, kept: only its state changed
    # A late revision of the absorbed record keeps it retired.
    late = sample(
        "06_a05_vali_found_corsica.hl7", ("|800006", "|800119"), ("|20240315", "|20240317")
    )
    assert (await send(sender, late)).outcome is Outcome.DELIVERED
    (still,) = fhir_server.patients(f"{LOCAL}|800119")
    assert still["active"] is False and still["link"] == retired["link"]
    assert len(fhir_server.patients()) == 2


async def test_a_merge_of_a_record_the_server_never_had_creates_it_retired(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    sender = open_sender(fhir_proxy.base_url)
    assert (await send(sender, sample("19_a40_merge.hl7"))).outcome is Outcome.DELIVERED
    (retired,) = fhir_server.patients(f"{LOCAL}|800119")
    assert retired["active"] is False
    assert identifiers(retired) == [("usual", "PI", LOCAL, "800119")]


async def test_a_change_of_local_identifier_moves_the_patient(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    sender = open_sender(fhir_proxy.base_url)
    first = sample("01_a28_vali_found_nir.hl7", ("|800001", "|700001"))
    assert (await send(sender, first)).outcome is Outcome.DELIVERED
    change = sample(
        "01_a28_vali_found_nir.hl7",
        ("ADT^A28^ADT_A05", "ADT^A47^ADT_A30"),
        ("|20240315", "|20240316"),
        ("\rPV1|1|N", "\rMRG|700001^^^CHU_DEMO&1.2.250.1.999.1.1&ISO^PI"),
    )
    result = await send(sender, change)
    assert result.outcome is Outcome.DELIVERED, result.error
    (patient,) = fhir_server.patients()
    assert ("usual", "PI", LOCAL, "800001") in identifiers(patient)
    assert ("old", "PI", LOCAL, "700001") in identifiers(patient)
    assert fhir_server.patients(f"{LOCAL}|800001") == [patient]


async def test_several_patients_with_the_identifier_park_as_an_identity_problem(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    twin = {
        "resourceType": "Patient",
        "identifier": [{"system": LOCAL, "value": "800009"}],
    }
    for _ in range(2):
        assert fhir_server.request("POST", "Patient", twin).status == 201
    result = await send(open_sender(fhir_proxy.base_url), sample("09_a31_vali_ins_verified.hl7"))
    assert result.outcome is Outcome.PARK
    assert "identity problem" in result.error
    assert not [seen for seen in fhir_proxy.requests if seen.method == "PUT"]


async def test_a_412_on_the_write_parks(fhir_proxy: FaultProxy, open_sender: SenderFactory) -> None:
    sender = open_sender(fhir_proxy.base_url)
    assert (await send(sender, sample("09_a31_vali_ins_verified.hl7"))).ack_code == "201"
    fhir_proxy.fail_next(200, outcome=False)  # hides the Patient from the search...
    fhir_proxy.fail_next(412)  # ...whose conditional update then finds several
    result = await send(sender, sample("09_a31_vali_ins_verified.hl7", ("|20240315", "|20240316")))
    assert (result.outcome, result.ack_code) == (Outcome.PARK, "412")


@pytest.mark.parametrize("status", [400, 422])
async def test_refused_content_parks_with_the_outcome(
    fhir_proxy: FaultProxy, open_sender: SenderFactory, status: int
) -> None:
    fhir_proxy.fail_next(status)
    result = await send(open_sender(fhir_proxy.base_url), sample("09_a31_vali_ins_verified.hl7"))
    assert result.outcome is Outcome.PARK
    assert result.error.startswith(f"search refused ({status}): error")
    assert "ADRUN" not in result.error and "800009" not in result.error


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_transient_answers_are_retried_then_delivered(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory, status: int
) -> None:
    sender = open_sender(fhir_proxy.base_url)
    fhir_proxy.fail_next(status)
    first = await send(sender, sample("09_a31_vali_ins_verified.hl7"))
    assert (first.outcome, first.ack_code) == (Outcome.RETRY, str(status))
    again = await send(sender, sample("09_a31_vali_ins_verified.hl7"))
    assert again.outcome is Outcome.DELIVERED
    assert len(fhir_server.patients()) == 1


async def test_a_server_that_does_not_answer_is_retried(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    sender = open_sender(fhir_proxy.base_url)
    fhir_proxy.hang_next()
    first = await send(sender, sample("09_a31_vali_ins_verified.hl7"))
    assert first.outcome is Outcome.RETRY
    assert first.error.startswith("FHIR server timeout")
    fhir_proxy.release_hung()
    fhir_proxy.fail_next(200, outcome=False)  # the search finds nothing...
    fhir_proxy.drop_next(after_upstream=True)  # ...and the write is done, its answer lost
    results = [await send(sender, sample("09_a31_vali_ins_verified.hl7")) for _ in range(2)]
    # The lost answer is a failed attempt, or the HTTP client sent the PUT again at once on
    # a new connection (an idempotent request): either way the write reached the server twice.
    assert Outcome.DELIVERED in {result.outcome for result in results}
    puts = [seen for seen in fhir_proxy.requests if seen.method == "PUT"]
    assert [seen.outcome for seen in puts][:2] == ["dropped", "forwarded"]
    assert len(fhir_server.patients()) == 1  # sent twice, one Patient


async def test_oauth_token_is_cached_and_fetched_again_when_refused(
    fhir_proxy: FaultProxy,
    fhir_server: FhirServer,
    token_server: TokenServer,
    open_sender: SenderFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_ENV, token_server.client_secret)
    fhir_proxy.require_token(token_server)
    oauth = OAuthSettings(token_server.token_url, token_server.client_id, SECRET_ENV)
    sender = open_sender(fhir_proxy.base_url, oauth=oauth)
    for number in range(3):
        payload = sample("09_a31_vali_ins_verified.hl7", ("|800009", f"|80009{number}"))
        assert (await send(sender, payload)).outcome is Outcome.DELIVERED
    assert token_server.issued == 1
    token_server.expire_all()  # revoked before its announced end: the server answers 401
    result = await send(sender, sample("01_a28_vali_found_nir.hl7"))
    assert result.outcome is Outcome.DELIVERED
    assert token_server.issued == 2
    assert len(fhir_server.patients()) == 4
    assert token_server.expires_in > MARGIN_S


async def test_oauth_failures_are_retried_and_name_no_secret(
    fhir_proxy: FaultProxy,
    token_server: TokenServer,
    open_sender: SenderFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fhir_proxy.require_token(token_server)
    oauth = OAuthSettings(token_server.token_url, token_server.client_id, SECRET_ENV)
    sender = open_sender(fhir_proxy.base_url, oauth=oauth)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    unset = await send(sender, sample("09_a31_vali_ins_verified.hl7"))
    assert unset.outcome is Outcome.RETRY
    assert unset.error == f"no OAuth token: environment variable {SECRET_ENV} is not set"
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    wrong = await send(sender, sample("09_a31_vali_ins_verified.hl7"))
    assert wrong.outcome is Outcome.RETRY
    assert wrong.error == "no OAuth token: token endpoint answered 401 (invalid_client)"
    assert "not-the-secret" not in wrong.error


async def test_mutual_tls(
    fhir_mtls_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    pki = fhir_mtls_proxy.pki
    assert pki is not None
    anonymous = open_sender(fhir_mtls_proxy.base_url, tls=ClientTls(ca=str(pki.ca_path)))
    refused = await send(anonymous, sample("09_a31_vali_ins_verified.hl7"))
    assert refused.outcome is Outcome.RETRY
    assert refused.error.startswith("FHIR server unreachable")
    tls = ClientTls(
        ca=str(pki.ca_path), cert=str(pki.client_cert_path), key=str(pki.client_key_path)
    )
    delivered = await send(
        open_sender(fhir_mtls_proxy.base_url, tls=tls), sample("09_a31_vali_ins_verified.hl7")
    )
    assert delivered.outcome is Outcome.DELIVERED
    assert len(fhir_server.patients()) == 1


async def test_a_removal_event_deletes_the_patient_when_listed(
    fhir_proxy: FaultProxy, fhir_server: FhirServer, open_sender: SenderFactory
) -> None:
    removal = sample("09_a31_vali_ins_verified.hl7", ("ADT^A31", "ADT^A29"))
    kept = open_sender(fhir_proxy.base_url)
    assert (await send(kept, sample("09_a31_vali_ins_verified.hl7"))).ack_code == "201"
    ignored = await send(kept, removal)  # A29 is not in remove_events by default
    assert (ignored.outcome, ignored.ack_code) == (Outcome.DELIVERED, "none")
    assert len(fhir_server.patients()) == 1
    removing = open_sender(fhir_proxy.base_url, remove_events=["A29"])
    deleted = await send(removing, removal)
    assert deleted.outcome is Outcome.DELIVERED
    assert fhir_server.patients() == []
    assert [(seen.method, seen.query["identifier"]) for seen in fhir_proxy.requests[-1:]] == [
        ("DELETE", [f"{LOCAL}|800009"])
    ]
    again = await send(removing, removal)  # nothing left to delete: done all the same
    assert again.outcome is Outcome.DELIVERED
