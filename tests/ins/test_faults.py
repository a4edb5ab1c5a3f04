"""INSi faults read namespace-aware, whatever the prefix, SOAP version and language; a fault
that names no usable code is a technical error naming the HTTP status, never a crash."""

from __future__ import annotations

import pytest

from engine.ins.errors import InsiConfigurationError, InsiResponseError, InsiTechnicalError
from engine.ins.soap.namespaces import SOAP11_ENV, SOAP12_ENV
from engine.ins.soap.response import parse_response


def soap12(prefix: str, inside: str, *, declare: str = "") -> bytes:
    return (
        f'<{prefix}:Envelope xmlns:{prefix}="{SOAP12_ENV}"{declare}><{prefix}:Body>'
        f"<{prefix}:Fault>{inside}</{prefix}:Fault></{prefix}:Body></{prefix}:Envelope>"
    ).encode()


def code(prefix: str, value: str, subcode: str = "") -> str:
    sub = (
        f"<{prefix}:Subcode><{prefix}:Value>{subcode}</{prefix}:Value></{prefix}:Subcode>"
        if subcode
        else ""
    )
    return f"<{prefix}:Code><{prefix}:Value>{value}</{prefix}:Value>{sub}</{prefix}:Code>"


def reason(prefix: str, language: str, text: str) -> str:
    return (
        f'<{prefix}:Reason><{prefix}:Text xml:lang="{language}">{text}</{prefix}:Text>'
        f"</{prefix}:Reason>"
    )


@pytest.mark.parametrize("prefix", ["soap", "env", "S", "SOAP-ENV"])
@pytest.mark.parametrize(
    ("language", "text"),
    [("fr", "Service indisponible, réessayez plus tard"), ("en", "Service unavailable")],
)
def test_a_retryable_fault_is_read_whatever_the_prefix_and_language(
    prefix: str, language: str, text: str
) -> None:
    body = soap12(
        prefix,
        code(prefix, f"{prefix}:Receiver", "siram:siram_40") + reason(prefix, language, text),
        declare=' xmlns:siram="urn:siram"',
    )
    with pytest.raises(InsiTechnicalError) as caught:
        parse_response(500, body)
    assert caught.value.code == "siram_40" and caught.value.retryable
    assert text not in str(caught.value)


def test_the_detail_code_is_read_when_its_attribute_is_prefixed() -> None:
    detail = (
        '<e:Detail><s:Erreur xmlns:s="urn:siram" s:code="DESIR_560" s:severite="fatal">'
        "Certificat refusé</s:Erreur></e:Detail>"
    )
    with pytest.raises(InsiConfigurationError) as caught:
        parse_response(500, soap12("e", code("e", "e:Sender") + detail))
    assert caught.value.code == "DESIR_560"


@pytest.mark.parametrize(
    ("faultcode", "kind"),
    [("s:Server", InsiTechnicalError), ("s:Client", InsiResponseError)],
)
def test_soap_11_fault_codes_get_their_soap_12_meaning(faultcode: str, kind: type) -> None:
    body = (
        f'<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><s:Fault><faultcode>{faultcode}</faultcode>'
        '<faultstring xml:lang="fr">erreur</faultstring></s:Fault></s:Body></s:Envelope>'
    ).encode()
    with pytest.raises(kind):
        parse_response(500, body)


@pytest.mark.parametrize(
    "inside",
    [
        "",  # an empty fault
        code("e", "e:" + "x" * 500),  # a "code" that is a page of text
        code("e", "<b>bold</b>"),  # markup where the code belongs
        "<e:Code><e:Value></e:Value></e:Code>",
        reason("e", "fr", "Erreur interne, contactez le support"),  # free text only
    ],
)
@pytest.mark.parametrize("status", [500, 503, 200])
def test_a_fault_without_a_usable_code_is_a_technical_error_naming_the_status(
    inside: str, status: int
) -> None:
    with pytest.raises(InsiTechnicalError) as caught:
        parse_response(status, soap12("e", inside))
    assert caught.value.code == f"http_{status}"
    assert f"HTTP {status}" in str(caught.value)
    assert "xxxx" not in str(caught.value) and "support" not in str(caught.value)
