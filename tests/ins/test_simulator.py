"""The simulator as a SOAP peer: hand-written requests over real HTTP, matching, dataset."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from lxml import etree

from engine.ins.matricule import compute_key
from engine.ins.oids import InsOid
from engine.ins.simulator.dataset import public_test_persons
from engine.ins.simulator.handler import InsiSimulator
from engine.ins.simulator.matching import PersonIndex
from engine.ins.simulator.server import RunningSimulator, start_server
from engine.ins.simulator.synthetic import synthetic_persons
from engine.ins.soap.response import parse_response
from engine.ins.traits import TraitsQuery

REQUEST = """<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
               xmlns:wsa="http://www.w3.org/2005/08/addressing">
  <soap:Header>
    {action}
    <wsa:MessageID>uuid:6b1c6b56-1f0b-4a57-9f6e-3c5b4d0d2a11</wsa:MessageID>
    <ctxlps:ContexteLPS xmlns:ctxlps="urn:siram:lps:ctxlps" Nature="CTXLPS" Version="01_00">
      <ctxlps:Id>1f7f2a8e-7c1b-4b7e-a7e2-6c9c0b4f5d21</ctxlps:Id>
      <ctxlps:Temps>2024-05-06T07:08:09.123Z</ctxlps:Temps>
      <ctxlps:Emetteur>CH-TEST</ctxlps:Emetteur>
      <ctxlps:LPS>
        <ctxlps:IDAM R="4">{idam}</ctxlps:IDAM>
        <ctxlps:Version>1.0</ctxlps:Version>
        <ctxlps:Instance>0f8fad5b-d9cb-469f-a165-70867728950e</ctxlps:Instance>
        <ctxlps:Nom>urn:lps:hand-written:1.0</ctxlps:Nom>
      </ctxlps:LPS>
    </ctxlps:ContexteLPS>
    {bam}
  </soap:Header>
  <soap:Body>
    <RECSANSVITALE xmlns="http://www.cnamts.fr/INSiRecSans">
      <NomNaissance>{name}</NomNaissance>
      <Prenom>{first}</Prenom>
      <Sexe>{sex}</Sexe>
      <DateNaissance>{date}</DateNaissance>{place}
    </RECSANSVITALE>
  </soap:Body>
</soap:Envelope>"""
ACTION = (
    "<wsa:Action>urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite</wsa:Action>"
)
BAM = """<ctxbam:ContexteBAM xmlns:ctxbam="urn:siram:bam:ctxbam" Version="01_02">
      <ctxbam:Id>a3a1f8b0-1111-4c2e-9a55-2b7f0d1e9c33</ctxbam:Id>
      <ctxbam:Temps>2024-05-06T07:08:09.123Z</ctxbam:Temps>
      <ctxbam:Emetteur>CH-TEST</ctxbam:Emetteur>
      <ctxbam:COUVERTURE/>
    </ctxbam:ContexteBAM>"""
SOAP12 = "application/soap+xml; charset=utf-8"


def request(
    name: str = "ADRTROIS",
    first: str = "DOMINIQUE",
    sex: str = "F",
    date: str = "1997-02-26",
    place: str | None = None,
    action: str = ACTION,
    idam: str = "IDAM-1",
    bam: str = BAM,
) -> bytes:
    place_xml = f"\n      <LieuNaissance>{place}</LieuNaissance>" if place else ""
    return REQUEST.format(
        name=name,
        first=first,
        sex=sex,
        date=date,
        place=place_xml,
        action=action,
        idam=idam,
        bam=bam,
    ).encode()


async def post(server: RunningSimulator, body: bytes, content_type: str = SOAP12) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        return await client.post(server.url, content=body, headers={"Content-Type": content_type})


NS = {
    "S": "http://www.w3.org/2003/05/soap-envelope",
    "r": "http://www.cnamts.fr/INSiResultat",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "siram": "urn:siram",
}


async def test_a_hand_written_request_gets_the_documented_00(
    http_simulator: RunningSimulator,
) -> None:
    response = await post(http_simulator, request())
    assert response.status_code == 200
    assert response.headers["content-type"] == SOAP12
    assert response.headers["x-insi-simulated"] == "true"
    doc = etree.fromstring(response.content)
    assert (
        doc.findtext("S:Header/wsa:RelatesTo", namespaces=NS)
        == "uuid:6b1c6b56-1f0b-4a57-9f6e-3c5b4d0d2a11"
    )
    res = doc.find("S:Body/r:RESULTAT", NS)
    assert res is not None
    values = {etree.QName(e).localname: e.text for e in res.iter() if e.text and e.text.strip()}
    assert values == {
        "CodeCR": "00",
        "LibelleCR": "OK",
        "NumIdentifiant": "297022A020778",
        "Cle": "78",
        "TypeMatricule": "NIR",
        "OID": "1.2.250.1.213.1.4.8",
        "NomNaissance": "ADRTROIS",
        "ListePrenom": "DOMINIQUE",
        "Sexe": "F",
        "DateNaissance": "1997-02-26",
        "LieuNaissance": "2A020",
    }
    assert res.find("r:INDIVIDU/r:TIQ/r:Prenom", NS) is None


@pytest.mark.parametrize(
    ("traits", "code"),
    [
        ({"name": "DE VINCI", "first": "LEONARDO", "sex": "M", "date": "2014-02-01"}, "02"),
        (
            {
                "name": "DE VINCI",
                "first": "LEONARDO",
                "sex": "M",
                "date": "2014-02-01",
                "place": "2A004",
            },
            "00",
        ),
        (
            {"name": "HOUILLES", "first": "PIERRE PAUL JACQUES", "sex": "M", "date": "1993-01-27"},
            "01",
        ),
        ({"name": "TCHITCHI", "first": "CATARINA", "sex": "F", "date": "1936-06-21"}, "00"),
        ({"name": "TCHITCHI", "first": "BELLA", "sex": "F", "date": "1936-06-21"}, "00"),
        ({"name": "TCHITCHI", "first": "CATARINA BELLA", "sex": "F", "date": "1936-06-21"}, "00"),
        ({"name": "TCHITCHI", "first": "BELLA CATARINA", "sex": "F", "date": "1936-06-21"}, "01"),
        (
            {
                "name": "TCHITCHI",
                "first": "CATARINA",
                "sex": "F",
                "date": "1936-06-21",
                "place": "75056",
            },
            "01",
        ),
        ({"name": "TCHITCHI", "first": "CATARINA", "sex": "M", "date": "1936-06-21"}, "01"),
    ],
)
async def test_matching_follows_the_real_service(
    http_simulator: RunningSimulator, traits: dict[str, str], code: str
) -> None:
    response = await post(http_simulator, request(**traits))
    assert response.status_code == 200
    assert parse_response(200, response.content).code.value == code


def erreur(response: httpx.Response) -> tuple[str | None, str | None]:
    doc = etree.fromstring(response.content)
    sub = doc.findtext("S:Body/S:Fault/S:Code/S:Subcode/S:Value", namespaces=NS)
    detail = doc.find("S:Body/S:Fault/S:Detail/siram:Erreur", NS)
    assert detail is not None
    return sub, detail.get("code")


@pytest.mark.parametrize("missing", ["action", "message", "lps", "bam", "couverture"])
async def test_a_missing_header_is_a_siram_100_fault(
    http_simulator: RunningSimulator, missing: str
) -> None:
    body = {
        "action": request(action=""),
        "message": request().replace(b"<wsa:MessageID>uuid:", b"<wsa:MessageID>urn:uuid:"),
        "lps": request()
        .replace(b"<ctxlps:LPS>", b"<ctxlps:X>")
        .replace(b"</ctxlps:LPS>", b"</ctxlps:X>"),
        "bam": request(bam=""),
        "couverture": request().replace(b"<ctxbam:COUVERTURE/>", b""),
    }[missing]
    response = await post(http_simulator, body)
    assert response.status_code == 500
    assert erreur(response) == ("siram:siram_100", "siram_100")


async def test_any_non_empty_idam_is_accepted_unless_an_allow_list_is_given() -> None:
    simulator = InsiSimulator(public_test_persons(), idam_allow_list=["IDAM-OK"])
    server = await start_server(simulator)
    try:
        refused = await post(server, request(idam="IDAM-1"))
        accepted = await post(server, request(idam="IDAM-OK"))
    finally:
        await server.aclose()
    assert erreur(refused) == ("siram:siram_100", "desir_550")
    assert accepted.status_code == 200
    assert simulator.answers == {"siram_100/desir_550": 1, "00": 1}


async def test_an_empty_idam_is_refused(http_simulator: RunningSimulator) -> None:
    assert erreur(await post(http_simulator, request(idam=""))) == ("siram:siram_100", "desir_550")


async def test_soap_11_and_wrong_content_types_are_refused(
    http_simulator: RunningSimulator,
) -> None:
    soap11 = request().replace(
        b"http://www.w3.org/2003/05/soap-envelope", b"http://schemas.xmlsoap.org/soap/envelope/"
    )
    mismatch = await post(http_simulator, soap11)
    assert mismatch.status_code == 500 and b"VersionMismatch" in mismatch.content
    assert (await post(http_simulator, request(), "text/xml")).status_code == 415
    assert (await post(http_simulator, b"not xml")).status_code == 500


async def test_an_invalid_body_is_a_sender_fault(http_simulator: RunningSimulator) -> None:
    response = await post(http_simulator, request(sex="X"))
    assert response.status_code == 500
    assert erreur(response) == (None, "invalid_request")


async def test_injected_faults_are_siram_40() -> None:
    server = await start_server(InsiSimulator(public_test_persons(), fault_rate=1.0))
    try:
        response = await post(server, request())
    finally:
        await server.aclose()
    assert erreur(response) == ("siram:siram_40", "insi_102")


def test_handle_is_plain_bytes_in_bytes_out(simulator: InsiSimulator) -> None:
    status, headers, body = simulator.handle(request(), {"Content-Type": SOAP12})
    assert status == 200 and headers["X-INSi-Simulated"] == "true"
    assert parse_response(status, body, simulated=True).code.value == "00"
    assert simulator.requests == 1 and simulator.answers == {"00": 1}


def test_synthetic_persons_are_deterministic_unique_and_valid() -> None:
    persons = synthetic_persons(2000, seed=7)
    assert [p.to_json() for p in persons[:50]] == [
        p.to_json() for p in synthetic_persons(50, seed=7)
    ]
    assert persons[0].to_json() != synthetic_persons(1, seed=8)[0].to_json()
    assert len({(p.birth_name, p.sex, p.birth_date) for p in persons}) == 2000
    assert all(compute_key(p.ins.matricule.body) == p.ins.matricule.key for p in persons)
    assert all(p.ins.oid is InsOid.TEST_NIR for p in persons)
    places = {p.birth_place[:2] for p in persons}
    assert {"2A", "2B"} <= places
    index = PersonIndex(persons)
    for person in persons[:200]:
        query = TraitsQuery(
            person.birth_name, person.first_names[0], person.sex, person.birth_date, None
        )
        assert index.search(query) == [person]
        assert person.traits().first_names == person.first_names


def test_synthetic_persons_emit_traits_for_load_generators() -> None:
    person = synthetic_persons(1, seed=1)[0]
    traits = person.traits(with_place=False)
    assert traits.birth_place is None
    assert isinstance(traits.birth_date, dt.date)
