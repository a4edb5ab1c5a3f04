"""The simulator's request handler: bytes and headers in, (status, headers, body) out.

No I/O here, so the aiohttp server and the in-memory httpx transport share it exactly;
`respond` adds the injected latency, the only thing that needs the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import structlog
from lxml import etree

from engine.ins.result import CodeCR
from engine.ins.simulator.dataset import Person
from engine.ins.simulator.envelopes import fault_envelope, result_envelope
from engine.ins.simulator.matching import PersonIndex
from engine.ins.soap.namespaces import (
    ACTION_SEARCH,
    CONTENT_TYPE,
    CTXBAM,
    CTXLPS,
    RECSANS,
    SIMULATED_HEADER,
    SOAP12_ENV,
    WSA,
    qname,
    wsdl_path,
)
from engine.ins.soap.xmltools import child, children, parse_xml, text
from engine.ins.traits import TraitsQuery

log = structlog.get_logger("ins.insi.simulator")

ALLOWED_CLIENT_CNS = frozenset({"INSI-AUTO", "INSI-MANU"})
Reply = tuple[int, dict[str, str], bytes]


@dataclass
class _Refusal(Exception):
    """Internal: the request is answered with a fault (never leaves this module)."""

    code: str
    subcode: str | None
    error_code: str
    reason: str


class InsiSimulator:
    """A local INSi: checks headers like the service, matches persons, injects faults."""

    def __init__(
        self,
        persons: Iterable[Person],
        *,
        idam_allow_list: Collection[str] | None = None,
        latency_s: float = 0.0,
        fault_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.index = PersonIndex(persons)
        self.idam_allow_list = frozenset(idam_allow_list) if idam_allow_list else None
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self._random = random.Random(seed)
        self.requests = 0
        """Requests handled so far (tests count calls with it)."""
        self.answers: Counter[str] = Counter()
        """Answers by CodeCR or fault code."""

    async def respond(
        self, request: bytes, headers: Mapping[str, str], client_cn: str | None = None
    ) -> Reply:
        """`handle` after the injected latency, as the servers call it."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return self.handle(request, headers, client_cn)

    def handle(
        self, request: bytes, headers: Mapping[str, str], client_cn: str | None = None
    ) -> Reply:
        """Answer one POST to `/lps`.

        `client_cn` is the CN of the TLS client certificate when the server checks client
        certificates, None when it does not (plain HTTP, in-process).
        """
        self.requests += 1
        content_type = next(
            (value for name, value in headers.items() if name.lower() == "content-type"), ""
        )
        if not content_type.lower().startswith("application/soap+xml"):
            return self._reply(
                415,
                b"SOAP 1.2 expects Content-Type: application/soap+xml",
                "http_415",
                "text/plain",
            )
        message_id: str | None = None
        try:
            envelope = _envelope(request)
            header = child(envelope, "Header")
            message_id = text(header, "MessageID")
            if client_cn is not None and client_cn not in ALLOWED_CLIENT_CNS:
                raise _Refusal(
                    "Sender", None, "DESIR_560", "Le CN du certificat client n'est pas autorise"
                )
            self._check_headers(header)
            if self._random.random() < self.fault_rate:
                raise _Refusal(
                    "Receiver",
                    "siram_40",
                    "insi_102",
                    "Service de recherche par traits temporairement inaccessible",
                )
            query = _query(child(envelope, "Body"))
        except _Refusal as refusal:
            body = fault_envelope(
                refusal.code, refusal.subcode, refusal.error_code, refusal.reason, message_id
            )
            code = "/".join(p for p in (refusal.subcode, refusal.error_code) if p)
            log.info("insi simulated fault", code=code, simulated=True)
            return self._reply(500, body, code)
        matches = self.index.search(query)
        result = {0: CodeCR.NOT_FOUND, 1: CodeCR.FOUND}.get(len(matches), CodeCR.SEVERAL)
        log.info("insi simulated result", outcome=result.value, simulated=True)
        body = result_envelope(result, matches[0] if result is CodeCR.FOUND else None, message_id)
        return self._reply(200, body, result.value)

    def _check_headers(self, header: etree._Element | None) -> None:
        """The service's own checks: addressing headers and both contexts, then the IDAM."""
        missing = [
            name
            for name, ok in (
                (
                    "wsa:Action",
                    _qualified(header, WSA, "Action") is not None
                    and text(header, "Action") == ACTION_SEARCH,
                ),
                ("wsa:MessageID", (text(header, "MessageID") or "").startswith("uuid:")),
                ("ContexteLPS", _valid(_qualified(header, CTXLPS, "ContexteLPS"))),
                ("ContexteBAM", _valid(_qualified(header, CTXBAM, "ContexteBAM"))),
            )
            if not ok
        ]
        if missing:
            raise _Refusal(
                "Sender",
                "siram_100",
                "siram_100",
                "En-tete absent ou invalide: " + ", ".join(missing),
            )
        idam = text(header, "ContexteLPS", "LPS", "IDAM")
        if idam is None or (self.idam_allow_list is not None and idam not in self.idam_allow_list):
            raise _Refusal(
                "Sender",
                "siram_100",
                "desir_550",
                "Numero d'autorisation du logiciel (IDAM) inconnu",
            )

    def _reply(
        self, status: int, body: bytes, answer: str, content_type: str = CONTENT_TYPE
    ) -> Reply:
        self.answers[answer] += 1
        return status, {"Content-Type": content_type, SIMULATED_HEADER: "true"}, body


def _envelope(request: bytes) -> etree._Element:
    try:
        envelope = parse_xml(request)
    except etree.XMLSyntaxError:
        raise _Refusal("Sender", None, "invalid_request", "Message XML invalide") from None
    if envelope.tag == qname("http://schemas.xmlsoap.org/soap/envelope/", "Envelope"):
        raise _Refusal("VersionMismatch", None, "invalid_request", "SOAP 1.2 attendu")
    if envelope.tag != qname(SOAP12_ENV, "Envelope") or child(envelope, "Body") is None:
        raise _Refusal("Sender", None, "invalid_request", "Enveloppe SOAP 1.2 attendue")
    return envelope


def _query(body: etree._Element | None) -> TraitsQuery:
    request = _qualified(body, RECSANS, "RECSANSVITALE")
    if request is None or not _valid(request):
        raise _Refusal("Sender", None, "invalid_request", "Requete RECSANSVITALE invalide")
    try:
        birth_date = dt.date.fromisoformat(text(request, "DateNaissance") or "")
    except ValueError:
        raise _Refusal("Sender", None, "invalid_request", "DateNaissance invalide") from None
    return TraitsQuery(
        birth_name=text(request, "NomNaissance") or "",
        first_name=" ".join(e.text or "" for e in children(request, "Prenom")).strip(),
        sex=text(request, "Sexe") or "",
        birth_date=birth_date,
        birth_place=text(request, "LieuNaissance"),
    )


def _qualified(parent: etree._Element | None, namespace: str, local: str) -> etree._Element | None:
    """The child with exactly this qualified name: the service is namespace-strict."""
    if parent is None:
        return None
    return parent.find(qname(namespace, local))


def _valid(element: etree._Element | None) -> bool:
    return element is not None and _contract_schema().validate(element)


@functools.cache
def _contract_schema() -> etree.XMLSchema:
    """The packaged request and header schemas, as one validator."""
    folder = wsdl_path().parent
    imports = "".join(
        f'<xsd:import namespace="{namespace}" schemaLocation="{(folder / name).as_uri()}"/>'
        for namespace, name in (
            (RECSANS, "INSiRecSans.xsd"),
            (CTXLPS, "ctxlps.xsd"),
            (CTXBAM, "ctxbam.xsd"),
        )
    )
    wrapper = f'<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema">{imports}</xsd:schema>'
    return etree.XMLSchema(etree.fromstring(wrapper.encode()))
