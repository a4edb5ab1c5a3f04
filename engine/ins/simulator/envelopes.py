"""SOAP 1.2 answers the simulator writes: a `RESULTAT`, or a fault with `siram:Erreur`.

The shape follows recorded answers of the service: `S:` envelope prefix, `RESULTAT` in a
default namespace, `ListePrenom` without `Prenom`.
"""

from __future__ import annotations

import uuid

from lxml import etree

from engine.ins.result import CodeCR, Ins
from engine.ins.simulator.dataset import Person
from engine.ins.soap.namespaces import ACTION_SEARCH, RESULTAT, SIRAM, SOAP12_ENV, WSA, qname


def result_envelope(code: CodeCR, person: Person | None, relates_to: str | None) -> bytes:
    """The answer to a traits search; `person` is given for 00 only."""
    envelope, body = _envelope(relates_to, ACTION_SEARCH + "Response")
    resultat = etree.SubElement(body, qname(RESULTAT, "RESULTAT"), nsmap={None: RESULTAT})
    cr = _sub(resultat, "CR")
    _sub(cr, "CodeCR", code.value)
    _sub(cr, "LibelleCR", code.label)
    if person is not None:
        individu = _sub(resultat, "INDIVIDU")
        _ins_element(_sub(individu, "INSACTIF"), person.ins, person.defect)
        for old in person.history:
            _ins_element(_sub(individu, "INSHISTO"), old)
        tiq = _sub(individu, "TIQ")
        returned = person.returned_traits()
        _sub(tiq, "NomNaissance", returned.birth_name)
        _sub(tiq, "ListePrenom", returned.first_names_text)
        _sub(tiq, "Sexe", returned.sex)
        _sub(tiq, "DateNaissance", returned.birth_date)
        if person.defect != "missing_trait":
            _sub(tiq, "LieuNaissance", returned.birth_place)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def fault_envelope(
    code: str, subcode: str | None, error_code: str, reason: str, relates_to: str | None
) -> bytes:
    """A SOAP 1.2 fault: `code` is Sender, Receiver or VersionMismatch."""
    envelope, body = _envelope(relates_to, f"{WSA}/fault")
    fault = etree.SubElement(body, qname(SOAP12_ENV, "Fault"))
    fault_code = etree.SubElement(fault, qname(SOAP12_ENV, "Code"))
    etree.SubElement(fault_code, qname(SOAP12_ENV, "Value")).text = f"S:{code}"
    if subcode:
        sub = etree.SubElement(fault_code, qname(SOAP12_ENV, "Subcode"))
        value = etree.SubElement(sub, qname(SOAP12_ENV, "Value"), nsmap={"siram": SIRAM})
        value.text = f"siram:{subcode}"
    reason_element = etree.SubElement(fault, qname(SOAP12_ENV, "Reason"))
    reason_text = etree.SubElement(reason_element, qname(SOAP12_ENV, "Text"))
    reason_text.set("{http://www.w3.org/XML/1998/namespace}lang", "fr")
    reason_text.text = reason
    detail = etree.SubElement(fault, qname(SOAP12_ENV, "Detail"))
    erreur = etree.SubElement(
        detail,
        qname(SIRAM, "Erreur"),
        nsmap={"siram": SIRAM},
        code=error_code,
        severite="fatal",
        messageID=relates_to or "",
    )
    erreur.text = reason
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _envelope(relates_to: str | None, action: str) -> tuple[etree._Element, etree._Element]:
    envelope = etree.Element(qname(SOAP12_ENV, "Envelope"), nsmap={"S": SOAP12_ENV})
    header = etree.SubElement(envelope, qname(SOAP12_ENV, "Header"))
    etree.SubElement(
        header, qname(WSA, "MessageID"), nsmap={"wsa": WSA}
    ).text = f"uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, qname(WSA, "RelatesTo"), nsmap={"wsa": WSA}).text = relates_to
    etree.SubElement(header, qname(WSA, "Action"), nsmap={"wsa": WSA}).text = action
    return envelope, etree.SubElement(envelope, qname(SOAP12_ENV, "Body"))


def _sub(parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, qname(RESULTAT, local))
    element.text = text
    return element


def _ins_element(parent: etree._Element, ins: Ins, defect: str | None = None) -> None:
    """`IdIndividu` and `OID`; a `defect` writes a wrong key or an unknown OID on purpose."""
    key = ins.matricule.key
    if defect == "matricule_key":
        key = f"{(int(key) + 1) % 100:02d}"
    identifier = _sub(parent, "IdIndividu")
    _sub(identifier, "NumIdentifiant", ins.matricule.body)
    _sub(identifier, "Cle", key)
    _sub(identifier, "TypeMatricule", ins.oid.kind)
    _sub(parent, "OID", "1.2.250.1.213.1.4.99" if defect == "unknown_oid" else ins.oid.value)
