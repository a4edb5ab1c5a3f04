"""The OIDs that tell which authority assigned a matricule INS."""

from __future__ import annotations

import enum


class InsOid(enum.StrEnum):
    """Assigning authorities of a matricule; INSi says which one, the engine never guesses."""

    NIR = "1.2.250.1.213.1.4.8"
    NIA = "1.2.250.1.213.1.4.9"
    TEST_NIR = "1.2.250.1.213.1.4.10"
    DEMO_NIR = "1.2.250.1.213.1.4.11"

    @property
    def hl7_namespace(self) -> str | None:
        """HL7 namespace id of the assigning authority (CX-4.1); test and demo have none."""
        return _HL7_NAMESPACES.get(self)


_HL7_NAMESPACES = {
    InsOid.NIR: "ASIP-SANTE-INS-NIR",
    InsOid.NIA: "ASIP-SANTE-INS-NIA",
}


def parse_oid(text: str) -> InsOid | None:
    """Return the known OID for `text`, or None: an unknown authority is not an INS."""
    try:
        return InsOid(text.strip())
    except ValueError:
        return None
