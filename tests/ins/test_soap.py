"""The SOAP contract without a server: headers, response parsing, faults, WSDL loading."""

from __future__ import annotations

import socket

import httpx
import pytest
from lxml import etree

from engine.ins.client import load_soap_client
from engine.ins.errors import (
    InsiConfigurationError,
    InsiResponseError,
    InsiTechnicalError,
)
from engine.ins.oids import InsOid
from engine.ins.result import CodeCR
from engine.ins.soap.headers import build_headers
from engine.ins.soap.namespaces import BINDING
from engine.ins.soap.response import parse_response
from tests.ins.conftest import CALLER, FIXED_NOW, fixed_ids


def test_headers_are_the_four_insi_expects_with_uuid_prefix_and_empty_couverture() -> None:
    message_id, headers = build_headers(CALLER, FIXED_NOW, fixed_ids())
    assert message_id == "uuid:00000000-0000-0000-0000-000000000001"
    xml = b"".join(etree.tostring(h) for h in headers).decode()
    assert xml == (
        '<wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite</wsa:Action>"
        '<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        "uuid:00000000-0000-0000-0000-000000000001</wsa:MessageID>"
        '<ctxlps:ContexteLPS xmlns:ctxlps="urn:siram:lps:ctxlps" Nature="CTXLPS" Version="01_00">'
        "<ctxlps:Id>00000000-0000-0000-0000-000000000002</ctxlps:Id>"
        "<ctxlps:Temps>2024-05-06T07:08:09.123Z</ctxlps:Temps>"
        "<ctxlps:Emetteur>SERVICE-TEST</ctxlps:Emetteur>"
        '<ctxlps:LPS><ctxlps:IDAM R="4">IDAM-TEST-0001</ctxlps:IDAM>'
        "<ctxlps:Version>0.1.0</ctxlps:Version>"
        "<ctxlps:Instance>0f8fad5b-d9cb-469f-a165-70867728950e</ctxlps:Instance>"
        "<ctxlps:Nom>urn:lps:ins-engine:0.1.0</ctxlps:Nom></ctxlps:LPS></ctxlps:ContexteLPS>"
        '<ctxbam:ContexteBAM xmlns:ctxbam="urn:siram:bam:ctxbam" Version="01_02">'
        "<ctxbam:Id>00000000-0000-0000-0000-000000000003</ctxbam:Id>"
        "<ctxbam:Temps>2024-05-06T07:08:09.123Z</ctxbam:Temps>"
        "<ctxbam:Emetteur>SERVICE-TEST</ctxbam:Emetteur>"
        "<ctxbam:COUVERTURE/></ctxbam:ContexteBAM>"
    )


INDIVIDU = """
<{p}INDIVIDU>
  <{p}INSACTIF><{p}IdIndividu><{p}NumIdentifiant>109076322083{last}</{p}NumIdentifiant>
    <{p}Cle>{key}</{p}Cle><{p}TypeMatricule>NIR</{p}TypeMatricule></{p}IdIndividu>
    <{p}OID>1.2.250.1.213.1.4.8</{p}OID></{p}INSACTIF>
  {histo}
  <{p}TIQ><{p}NomNaissance>ECETINSI</{p}NomNaissance>
    <{p}ListePrenom>PIERRE-ALAIN MURIEL FLORIANT</{p}ListePrenom><{p}Sexe>M</{p}Sexe>
    <{p}DateNaissance>2009-07-14</{p}DateNaissance><{p}LieuNaissance>63220</{p}LieuNaissance>
  </{p}TIQ>
</{p}INDIVIDU>"""
HISTO = """<{p}INSHISTO><{p}IdIndividu><{p}NumIdentifiant>{number}</{p}NumIdentifiant>
  <{p}Cle>{key}</{p}Cle></{p}IdIndividu><{p}OID>1.2.250.1.213.1.4.8</{p}OID>
  <{p}DateDeb>2009-07-14</{p}DateDeb></{p}INSHISTO>"""


def envelope(env_ns: str, env_prefix: str, resultat_open: str, p: str, inner: str) -> bytes:
    """A response in a given prefix style; `p` is the prefix of RESULTAT's children.

    With unqualified children (`p` empty) under a prefixed RESULTAT, the children are in no
    namespace at all: some servers write that, and local-name matching still reads them.
    """
    closing = resultat_open.split()[0].replace("<", "</") + ">"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<{env_prefix}:Envelope xmlns:{env_prefix}="{env_ns}">
 <{env_prefix}:Header/>
 <{env_prefix}:Body>{resultat_open}
  <{p}CR><{p}CodeCR>00</{p}CodeCR><{p}LibelleCR>OK</{p}LibelleCR></{p}CR>{inner}
 {closing}</{env_prefix}:Body></{env_prefix}:Envelope>""".encode()


SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
RES = "http://www.cnamts.fr/INSiResultat"
STYLES = {
    "S-default-ns": ("S", f'<RESULTAT xmlns="{RES}">', ""),
    "env-prefixed": ("env", f'<ns2:RESULTAT xmlns:ns2="{RES}">', "ns2:"),
    "soap-unqualified-children": ("soap", f'<r:RESULTAT xmlns:r="{RES}">', ""),
}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("history", [0, 1, 3])
def test_a_00_is_read_whatever_the_prefixes_and_history_count(style: str, history: int) -> None:
    env_prefix, opening, p = STYLES[style]
    histo = "".join(
        HISTO.format(p=p, number="209076322083" + "4", key="39") for _ in range(history)
    )
    inner = INDIVIDU.format(p=p, last="4", key="89", histo=histo)
    result = parse_response(200, envelope(SOAP12, env_prefix, opening, p, inner))
    assert result.code is CodeCR.FOUND
    assert result.ins is not None and str(result.ins.matricule) == "109076322083489"
    assert result.ins.oid is InsOid.NIR
    assert [str(i.matricule) for i in result.history] == ["209076322083439"] * history
    assert result.traits is not None
    assert result.traits.first_names == ("PIERRE-ALAIN", "MURIEL", "FLORIANT")
    assert result.traits.first_names_text == "PIERRE-ALAIN MURIEL FLORIANT"
    assert result.traits.birth_date == "2009-07-14" and result.traits.birth_place == "63220"


@pytest.mark.parametrize(("code", "expected"), [("01", CodeCR.NOT_FOUND), ("02", CodeCR.SEVERAL)])
def test_01_and_02_carry_no_identity(code: str, expected: CodeCR) -> None:
    body = envelope(SOAP12, "S", f'<RESULTAT xmlns="{RES}">', "", "").replace(
        b"<CodeCR>00</CodeCR>", f"<CodeCR>{code}</CodeCR>".encode()
    )
    assert parse_response(200, body).code is expected


@pytest.mark.parametrize(
    ("mutation", "code"),
    [
        (("<Cle>89</Cle>", "<Cle>88</Cle>"), "invalid_matricule"),
        (("1.2.250.1.213.1.4.8", "1.2.3"), "unknown_oid"),
        (("<LieuNaissance>63220</LieuNaissance>", ""), "incomplete_answer"),
        (("<ListePrenom>PIERRE-ALAIN MURIEL FLORIANT</ListePrenom>", ""), "incomplete_answer"),
        (("<OID>1.2.250.1.213.1.4.8</OID></INSACTIF>", "</INSACTIF>"), "incomplete_answer"),
        (("<CodeCR>00</CodeCR>", "<CodeCR>07</CodeCR>"), "codecr_07"),
    ],
)
def test_a_00_is_accepted_only_when_complete_and_valid(
    mutation: tuple[str, str], code: str
) -> None:
    body = envelope(
        SOAP12,
        "S",
        f'<RESULTAT xmlns="{RES}">',
        "",
        INDIVIDU.format(p="", last="4", key="89", histo=""),
    ).decode()
    assert mutation[0] in body
    with pytest.raises(InsiResponseError) as caught:
        parse_response(200, body.replace(mutation[0], mutation[1]).encode())
    assert caught.value.code == code
    assert "1090763220834" not in str(caught.value)


def fault(subcode: str | None, erreur: str, code: str = "Sender") -> bytes:
    sub = f"<env:Subcode><env:Value>siram:{subcode}</env:Value></env:Subcode>" if subcode else ""
    return f"""<env:Envelope xmlns:env="{SOAP12}"><env:Body><env:Fault>
<env:Code><env:Value>env:{code}</env:Value>{sub}</env:Code>
<env:Reason><env:Text xml:lang="fr">texte libre</env:Text></env:Reason>
<env:Detail><siram:Erreur xmlns:siram="urn:siram" code="{erreur}" severite="fatal"
 messageID="uuid:1">texte libre</siram:Erreur></env:Detail>
</env:Fault></env:Body></env:Envelope>""".encode()


@pytest.mark.parametrize(
    ("body", "kind", "code"),
    [
        (fault("siram_100", "desir_550"), InsiConfigurationError, "siram_100/desir_550"),
        (fault(None, "DESIR_560"), InsiConfigurationError, "DESIR_560"),
        (fault("siram_40", "desir_1020", "Receiver"), InsiTechnicalError, "siram_40/desir_1020"),
        (fault("siram_40", "insi_102", "Receiver"), InsiTechnicalError, "siram_40/insi_102"),
        (fault("siram_999", "x_1", "Receiver"), InsiTechnicalError, "siram_999/x_1"),
        (fault("siram_999", "x_1", "Sender"), InsiResponseError, "siram_999/x_1"),
    ],
)
def test_faults_map_to_retryable_or_configuration_errors(
    body: bytes, kind: type, code: str
) -> None:
    with pytest.raises(kind) as caught:
        parse_response(500, body)
    assert caught.value.code == code
    assert caught.value.retryable is (kind is InsiTechnicalError)
    assert "texte libre" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (503, InsiTechnicalError),
        (502, InsiTechnicalError),
        (404, InsiConfigurationError),
        (403, InsiConfigurationError),
        (200, InsiResponseError),
    ],
)
def test_answers_that_are_not_soap_map_by_http_status(status: int, kind: type) -> None:
    with pytest.raises(kind):
        parse_response(status, b"<html>Service Unavailable</html>")


def test_loading_the_wsdl_touches_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access while loading the WSDL")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    client = load_soap_client(httpx.AsyncClient())
    operation = client.wsdl.bindings[BINDING].get("rechercherInsAvecTraitsIdentite")
    assert (
        operation.soapaction == "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"
    )


def test_the_wsdl_loader_refuses_any_remote_fetch() -> None:
    client = load_soap_client(httpx.AsyncClient())
    with pytest.raises(InsiConfigurationError):
        client.transport.load("http://example.org/ws-addr.xsd")
