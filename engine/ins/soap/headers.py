"""The four SOAP headers INSi requires, built explicitly.

zeep's addressing plugin writes `urn:uuid:` message ids and adds `wsa:To`, which INSi clients
do not send; so every header is built here, with the clock and id generator injectable.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from engine.ins.soap.namespaces import ACTION_SEARCH, CTXBAM, CTXLPS, WSA, qname


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """Who calls INSi: the software (IDAM, name, version), this installation and the emitter."""

    idam: str
    software_name: str
    software_version: str
    instance_id: str
    emitter: str


def utc_timestamp(now: dt.datetime) -> str:
    """UTC dateTime with milliseconds, as the contexts carry it."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def build_headers(
    caller: CallerIdentity,
    now: dt.datetime,
    new_id: Callable[[], uuid.UUID] = uuid.uuid4,
) -> tuple[str, list[etree._Element]]:
    """Return the message id and the header elements (`wsa:Action`, `wsa:MessageID`, contexts)."""
    message_id = f"uuid:{new_id()}"
    action = etree.Element(qname(WSA, "Action"), nsmap={"wsa": WSA})
    action.text = ACTION_SEARCH
    message = etree.Element(qname(WSA, "MessageID"), nsmap={"wsa": WSA})
    message.text = message_id
    timestamp = utc_timestamp(now)

    lps = etree.Element(
        qname(CTXLPS, "ContexteLPS"), nsmap={"ctxlps": CTXLPS}, Nature="CTXLPS", Version="01_00"
    )
    _child(lps, CTXLPS, "Id", str(new_id()))
    _child(lps, CTXLPS, "Temps", timestamp)
    _child(lps, CTXLPS, "Emetteur", caller.emitter)
    software = _child(lps, CTXLPS, "LPS")
    _child(software, CTXLPS, "IDAM", caller.idam).set("R", "4")
    _child(software, CTXLPS, "Version", caller.software_version)
    _child(software, CTXLPS, "Instance", caller.instance_id)
    _child(software, CTXLPS, "Nom", f"urn:lps:{caller.software_name}:{caller.software_version}")

    bam = etree.Element(qname(CTXBAM, "ContexteBAM"), nsmap={"ctxbam": CTXBAM}, Version="01_02")
    _child(bam, CTXBAM, "Id", str(new_id()))
    _child(bam, CTXBAM, "Temps", timestamp)
    _child(bam, CTXBAM, "Emetteur", caller.emitter)
    _child(bam, CTXBAM, "COUVERTURE")
    return message_id, [action, message, lps, bam]


def _child(
    parent: etree._Element, namespace: str, local: str, text: str | None = None
) -> etree._Element:
    element = etree.SubElement(parent, qname(namespace, local))
    element.text = text
    return element
