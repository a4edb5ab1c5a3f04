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
    def hl7_namespace(self) -> str:
        """HL7 namespace id of the assigning authority (CX-4.1).

        The OID decides: NIA for `.9`, NIR for the others, test and demonstration OIDs
        included, as the published PAM FR examples write them.
        """
        return "ASIP-SANTE-INS-NIA" if self is InsOid.NIA else "ASIP-SANTE-INS-NIR"

    @property
    def kind(self) -> str:
        """NIA or NIR: what a person reading a report needs to know of the authority."""
        return "NIA" if self is InsOid.NIA else "NIR"


_BY_VALUE = {oid.value: oid for oid in InsOid}


def parse_oid(text: str) -> InsOid | None:
    """Return the known OID for `text`, or None: an unknown authority is not an INS.

    A dict look-up: every subcomponent of PID-2/3/4 is asked, and the enum's own
    constructor raises and catches an exception for each one that is no OID.
    """
    return _BY_VALUE.get(text.strip())
