"""Read an INSi answer: a `RESULTAT` becomes an `InsiResult`, a fault becomes a typed error.

Tolerant of what varies between servers (prefixes, default namespaces, element order,
INSHISTO absent/single/repeated, `ListePrenom` without `Prenom`), strict on what matters:
a 00 is accepted only when the INS and every returned trait are present and the key is valid.
A 00 that fails those checks is an `InvalidAnswerError`: an answer about one identity, not a
sign that the service is down.
"""

from __future__ import annotations

import re

from lxml import etree

from engine.ins.errors import (
    InsiConfigurationError,
    InsiError,
    InsiResponseError,
    InsiTechnicalError,
    InvalidAnswerError,
    MatriculeError,
)
from engine.ins.matricule import Matricule
from engine.ins.oids import parse_oid
from engine.ins.result import CodeCR, Ins, InsiResult, ReturnedTraits
from engine.ins.soap.faults import SoapFault, fault_error
from engine.ins.soap.namespaces import SOAP11_ENV, SOAP12_ENV
from engine.ins.soap.xmltools import child, children, descendant, local_name, parse_xml, text

_CONFIGURATION_STATUSES = frozenset({401, 403, 404, 405, 415})
_TECHNICAL_STATUSES = frozenset({408, 425, 429})


def parse_response(status: int, body: bytes, simulated: bool = False) -> InsiResult:
    """Turn the HTTP status and body of one call into a result, or raise an `InsiError`."""
    try:
        envelope = parse_xml(body) if body.strip() else None
    except etree.XMLSyntaxError:
        envelope = None
    soap_body = (
        child(envelope, "Body")
        if envelope is not None and local_name(envelope) == "Envelope"
        else None
    )
    if soap_body is None:
        raise _status_error(status, "answer is not a SOAP envelope")
    fault_element = child(soap_body, "Fault")
    if fault_element is not None:
        fault = read_fault(fault_element)
        if fault is None:  # a fault, but not one that says what went wrong: INSi failed
            raise InsiTechnicalError(
                f"INSi answered HTTP {status} with a SOAP fault that cannot be read",
                code=f"http_{status}",
            )
        raise fault_error(fault)
    resultat = descendant(soap_body, "RESULTAT")
    if resultat is None:
        raise _status_error(status, "SOAP body without RESULTAT")
    if status != 200:
        raise _status_error(status, "RESULTAT with an HTTP error status")
    return read_resultat(resultat, simulated)


def read_fault(fault: etree._Element) -> SoapFault | None:
    """A SOAP 1.2 fault, or a 1.1 one; None when it names no code the engine can trust.

    Read namespace-aware and by codes only: the prefixes (`soap:`, `env:`, `S:`...) and the
    language of the free text have changed before, and the free text may echo data.
    """
    value = child(fault, "Code", "Value")
    if value is None:
        value = child(fault, "faultcode")  # SOAP 1.1
    code = _qname_code(value)
    subcode = _qname_code(child(fault, "Code", "Subcode", "Value"))
    detail = child(fault, "Detail")
    if detail is None:
        detail = child(fault, "detail")
    erreur = descendant(detail, "Erreur") if detail is not None else None
    error_code = _code(_local_attribute(erreur, "code")) if erreur is not None else None
    if code is None and subcode is None and error_code is None:
        return None
    return SoapFault(code=code or "Receiver", subcode=subcode, error_code=error_code)


def read_resultat(resultat: etree._Element, simulated: bool = False) -> InsiResult:
    """A `RESULTAT` element: 01 and 02 carry nothing else, 00 must carry everything."""
    raw_code = text(resultat, "CR", "CodeCR")
    try:
        code = CodeCR(raw_code or "")
    except ValueError:
        raise InsiResponseError(
            "INSi answered an unexpected CodeCR", code=f"codecr_{raw_code or 'missing'}"
        ) from None
    if code is not CodeCR.FOUND:
        return InsiResult(code, simulated=simulated)
    individu = child(resultat, "INDIVIDU")
    active = child(individu, "INSACTIF")
    if individu is None or active is None:
        raise _incomplete("INSACTIF")
    return InsiResult(
        code=code,
        ins=_read_ins(active),
        history=tuple(_read_ins(item) for item in children(individu, "INSHISTO")),
        traits=_read_tiq(child(individu, "TIQ")),
        simulated=simulated,
    )


def _read_ins(element: etree._Element) -> Ins:
    number = text(element, "IdIndividu", "NumIdentifiant")
    key = text(element, "IdIndividu", "Cle")
    oid_text = text(element, "OID")
    if number is None or key is None or oid_text is None:
        raise _incomplete("IdIndividu/OID")
    oid = parse_oid(oid_text)
    if oid is None:
        raise InvalidAnswerError("INSi answered an unknown OID", code="unknown_oid")
    try:
        matricule = Matricule(number.upper(), key)
    except MatriculeError as error:
        raise InvalidAnswerError(
            f"INSi answered an invalid matricule: {error}", code="invalid_matricule"
        ) from None
    return Ins(matricule, oid, text(element, "DateDeb"), text(element, "DateFin"))


def _read_tiq(tiq: etree._Element | None) -> ReturnedTraits:
    first_names = text(tiq, "ListePrenom") or text(tiq, "Prenom")
    values = (
        text(tiq, "NomNaissance"),
        first_names,
        text(tiq, "Sexe"),
        text(tiq, "DateNaissance"),
        text(tiq, "LieuNaissance"),
    )
    birth_name, names, sex, birth_date, birth_place = values
    if (
        birth_name is None
        or names is None
        or sex is None
        or birth_date is None
        or birth_place is None
    ):
        raise _incomplete("TIQ")
    return ReturnedTraits(birth_name, tuple(names.split()), sex, birth_date, birth_place)


def _incomplete(part: str) -> InvalidAnswerError:
    return InvalidAnswerError(
        f"INSi answered 00 without a complete {part}", code="incomplete_answer"
    )


def _status_error(status: int, what: str) -> InsiError:
    if status in _CONFIGURATION_STATUSES:
        return InsiConfigurationError(
            f"INSi endpoint answered HTTP {status}: check url and certificates",
            code=f"http_{status}",
        )
    if status >= 500 or status in _TECHNICAL_STATUSES:
        return InsiTechnicalError(f"INSi answered HTTP {status}", code=f"http_{status}")
    return InsiResponseError(f"INSi {what} (HTTP {status})", code=f"http_{status}")


# SOAP 1.1 fault codes and their SOAP 1.2 names.
_SOAP_CODES = {"Server": "Receiver", "Client": "Sender"}
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def _qname_code(element: etree._Element | None) -> str | None:
    """The local part of a QName value such as `env:Receiver`, resolved against the
    element's namespaces: a SOAP 1.1 code in an envelope namespace gets its 1.2 name."""
    if element is None or element.text is None:
        return None
    prefix, _, local = element.text.strip().rpartition(":")
    namespace = element.nsmap.get(prefix or None)
    code = _code(local)
    if code is not None and namespace in (SOAP11_ENV, SOAP12_ENV):
        return _SOAP_CODES.get(code, code)
    return code


def _code(value: str | None) -> str | None:
    """A code as INSi writes them (`siram_40`, `DESIR_560`), or None for anything else."""
    return value if value is not None and _CODE.fullmatch(value) else None


def _local_attribute(element: etree._Element, name: str) -> str | None:
    """An attribute by its local name, whether written `code=` or `siram:code=`."""
    for key, value in element.attrib.items():
        if str(key).rpartition("}")[2] == name:
            return str(value)
    return None
