"""What PID-32 says about the identity, read strictly enough that only a clear `VALI` opens
the INS path.

PID-32 repeats: one status (HL7 table 0445 as PAM FR 2.11.2 and the RNIV list it) and
attributes. Reading is asymmetric on purpose: what closes the path (`FICT`, `DOUT`) is
looked for anywhere in the field, in any case, in any component; what opens it must be
written exactly: one status, `VALI`, upper case, no component, and nothing beside it but an
attribute that does not forbid an INS (`HOMA`, a homonym). Trailing spaces of a coded value
are insignificant in HL7 (`VALI  ` is `VALI`); leading ones are not. Anything else is a
reason, recorded as the outcome's detail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.hl7.message import HL7_NULL, Separators

VALIDATED = "VALI"
PROVISIONAL = "PROV"
# Table 0445 (InteropSanté, PAM FR 2.11.2): the identity's status...
STATUSES = frozenset(
    (
        "VIDE PROV VALI DOUB DESA DPOT DOUA COLP COLV FILI CACH ANOM IDVER RECD IDRA USUR HOMD INVA"
    ).split()
)
# ...and its attributes: a homonym may carry an INS, a fictive or doubtful identity never.
HARMLESS_ATTRIBUTES = frozenset({"HOMA"})
NEVER_QUALIFIED = frozenset({"FICT", "DOUT"})

# Reasons the field is not one clear status (the outcome's detail when no INS may travel).
FICTIVE_OR_DOUBTFUL = "fictive_or_doubtful"
SEVERAL_STATUSES = "several_statuses"
UNKNOWN_STATUS = "unknown_status"
MALFORMED_STATUS = "malformed_status"


@dataclass(frozen=True, slots=True)
class Reliability:
    """PID-32 as read: the one status ('' for none) or why it cannot be trusted."""

    status: str
    problem: str | None = None


def read_reliability(value: str, separators: Separators) -> Reliability:
    """Read PID-32 (the field's raw text, escape sequences untouched)."""
    tokens = re.split(
        "|".join(
            re.escape(s)
            for s in (separators.repetition, separators.component, separators.subcomponent)
        ),
        value,
    )
    if any(token.strip().upper() in NEVER_QUALIFIED for token in tokens):
        return Reliability("", FICTIVE_OR_DOUBTFUL)
    statuses: list[str] = []
    for repetition in (text.rstrip(" ") for text in value.split(separators.repetition)):
        if repetition in ("", HL7_NULL):
            continue
        if any(s in repetition for s in (separators.component, separators.subcomponent)):
            return Reliability("", MALFORMED_STATUS)
        if repetition in STATUSES:
            statuses.append(repetition)
        elif repetition not in HARMLESS_ATTRIBUTES:
            return Reliability("", UNKNOWN_STATUS)
    if len(statuses) > 1:
        return Reliability("", SEVERAL_STATUSES)
    return Reliability(statuses[0] if statuses else "")
