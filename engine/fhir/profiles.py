"""Every FR Core canonical URL, identifier system and code the FHIR mapping writes, in one place.

FR Core is pinned to 2.1.0, the release ANS's published guides profile today: a receiver
that validates against those guides knows 2.1.0's shapes. What 2.1.0 does not have and later
releases added (the `comment` and `dateInterrogationINSi` sub-extensions, the
identity-status code system PROV/RECUP/VALI/QUAL) is not written: 2.1.0's identity
reliability codes its status in `fr-core-cs-v2-0445` and calls the INSi call date
`dateCollection`. The stricter invariants of later releases (one current INS, FICT/DOUT only
on a provisional identity, never both) are still checked (`engine.fhir.validation`): a
resource that meets them meets 2.1.0.
"""

from __future__ import annotations

from engine.ins.oids import InsOid

FR_CORE_VERSION = "2.1.0"

_CORE = "https://hl7.fr/ig/fhir/core"
PATIENT_PROFILE = f"{_CORE}/StructureDefinition/fr-core-patient"
PATIENT_INS_PROFILE = f"{_CORE}/StructureDefinition/fr-core-patient-ins"


def pinned(canonical: str) -> str:
    """`canonical|version`, as meta.profile names the release the resource was written for."""
    return f"{canonical}|{FR_CORE_VERSION}"


# Extensions (FRCorePatientProfile.fsh, FRCorePatientINSProfile.fsh and extensions/).
IDENTITY_RELIABILITY = f"{_CORE}/StructureDefinition/fr-core-identity-reliability"
BIRTH_LIST_GIVEN_NAME = f"{_CORE}/StructureDefinition/fr-core-patient-birth-list-given-name"
ADDRESS_INSEE_CODE = f"{_CORE}/StructureDefinition/fr-core-address-insee-code"
BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"  # core extension
# Sub-extensions of the identity reliability, as 2.1.0 names them.
METHOD_COLLECTION = "methodCollection"
DATE_COLLECTION = "dateCollection"  # the INSi call date (renamed dateInterrogationINSi later)
IDENTITY_STATUS = "identityStatus"
VALIDATION_MODE = "validationMode"
COMMENT = "comment"  # read by the checks only: the releases after 2.1.0 put attributes there

# Code systems.
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"  # PI, NH
FR_V2_0203 = f"{_CORE}/CodeSystem/fr-core-cs-v2-0203"  # INS-NIR, INS-NIA, -TEST, -DEMO
FR_V2_0445 = f"{_CORE}/CodeSystem/fr-core-cs-v2-0445"  # identity status and attributes
METHOD_COLLECTION_SYSTEM = f"{_CORE}/CodeSystem/fr-core-cs-method-collection"
VALIDATION_MODE_SYSTEM = f"{_CORE}/CodeSystem/fr-core-cs-mode-validation-identity"
# The INSEE code of a commune (COG; 99 + the country's code abroad): TRE R13, as 2.1.0 binds it.
INSEE_CODE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-Commune/FHIR/TRE-R13-Commune"

# Identifier types.
LOCAL_TYPE = "PI"
BILLING_NIR_TYPE = "NH"
INS_TYPES = {
    InsOid.NIR: "INS-NIR",
    InsOid.NIA: "INS-NIA",
    InsOid.TEST_NIR: "INS-NIR-TEST",
    InsOid.DEMO_NIR: "INS-NIR-DEMO",
}
# The use each INS slice fixes (FRCorePatientINSProfile.fsh, 2.1.0): the NIA is temporary.
INS_USES = {
    InsOid.NIR: "official",
    InsOid.NIA: "temp",
    InsOid.TEST_NIR: "official",
    InsOid.DEMO_NIR: "official",
}
OLD_USE = "old"  # a deactivated INS (A47's, A40's) or a replaced record's identifier


def oid_system(oid: str) -> str:
    return f"urn:oid:{oid}"


BILLING_NIR_SYSTEM = oid_system(InsOid.NIR.value)  # the NSS shares the INS-NIR's OID
INS_SYSTEMS = {oid_system(oid.value): oid for oid in InsOid}

# Codes 2.1.0's value sets hold, for what the ZFD segment says (hl7-mllp: ZFD-5, ZFD-7).
METHOD_CODES = frozenset({"SM", "CV", "INSI", "CB"})
VALIDATION_MODE_CODES = frozenset({"AN", "CC", "CE", "CM", "CN", "CS", "LE", "PA", "PC", "TC"})
# PID-32 attributes (table 0445, PAM FR 2.11): a homonym, a fictive or a doubtful identity.
HOMONYM, FICTIVE, DOUBTFUL = "HOMA", "FICT", "DOUT"
PROVISIONAL, VALIDATED = "PROV", "VALI"
