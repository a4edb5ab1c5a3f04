"""PID-32 and the ZFD segment as FR Core 2.1.0's identity-reliability extension.

2.1.0 has one `identityStatus` per extension and no `comment`: the status (table 0445, as
PAM FR 2.11 codes it) goes in the first extension with how the identity was collected
(ZFD-5), when INSi was called (ZFD-6) and which document was checked (ZFD-7); each
attribute (HOMA, FICT, DOUT) in an extension of its own, coded in the same table.

The status is read by the engine's own reader (`engine.enrich.reliability`), so that FHIR
and HL7 agree on what PID-32 says. Where it says nothing clear (several statuses, an
unknown one) no status is written. A fictive or doubtful identity is provisional whatever
PID-32's status says (RNIV, EXI SI 09), and is never both: fictive wins, as it says more.
"""

from __future__ import annotations

import re
from typing import Any

from engine.enrich.identity import read_text
from engine.enrich.reliability import FICTIVE_OR_DOUBTFUL, read_reliability
from engine.fhir import profiles
from engine.fhir.dates import fhir_date
from engine.hl7.message import Message, Segment


def status_and_attributes(pid: Segment) -> tuple[str, tuple[str, ...]]:
    """PID-32's status ('' when unclear) and its attributes, as they will be written."""
    separators = pid.separators
    value = pid.field(32)
    tokens = {
        token.strip().upper()
        for token in re.split(
            "|".join(
                re.escape(s)
                for s in (separators.repetition, separators.component, separators.subcomponent)
            ),
            value,
        )
    }
    homonym = any(rep.rstrip(" ") == profiles.HOMONYM for rep in value.split(separators.repetition))
    never = profiles.FICTIVE if profiles.FICTIVE in tokens else None
    never = never or (profiles.DOUBTFUL if profiles.DOUBTFUL in tokens else None)
    reliability = read_reliability(value, separators)
    if never is not None or reliability.problem == FICTIVE_OR_DOUBTFUL:
        status = profiles.PROVISIONAL
    else:
        status = reliability.status if reliability.problem is None else ""
    attributes = ((profiles.HOMONYM,) if homonym else ()) + ((never,) if never else ())
    return status, attributes


def reliability_extensions(message: Message, pid: Segment) -> list[dict[str, Any]]:
    """The identity-reliability extensions of this PID (none when there is nothing to say)."""
    status, attributes = status_and_attributes(pid)
    first: list[dict[str, Any]] = []
    zfd = message.segment("ZFD")
    if zfd is not None:
        separators = message.separators
        method = read_text(zfd.field(5), separators).upper()
        if method in profiles.METHOD_CODES:
            first.append(
                _coded(profiles.METHOD_COLLECTION, profiles.METHOD_COLLECTION_SYSTEM, method)
            )
        called = fhir_date(read_text(zfd.field(6), separators))
        if called is not None and len(called) == len("YYYY-MM-DD"):
            first.append({"url": profiles.DATE_COLLECTION, "valueDate": called})
    if status:
        first.append(_coded(profiles.IDENTITY_STATUS, profiles.FR_V2_0445, status))
    if zfd is not None:
        mode = read_text(zfd.field(7), message.separators).upper()
        if mode in profiles.VALIDATION_MODE_CODES:
            first.append(_coded(profiles.VALIDATION_MODE, profiles.VALIDATION_MODE_SYSTEM, mode))
    found = [{"url": profiles.IDENTITY_RELIABILITY, "extension": first}] if first else []
    for attribute in attributes:
        coded = _coded(profiles.IDENTITY_STATUS, profiles.FR_V2_0445, attribute)
        found.append({"url": profiles.IDENTITY_RELIABILITY, "extension": [coded]})
    return found


def _coded(url: str, system: str, code: str) -> dict[str, Any]:
    return {"url": url, "valueCoding": {"system": system, "code": code}}
