"""What each code the INS plug-in records means, in a sentence: the one statement of it,
shown beside each decision on a message's console page and written into the INS rules page
of the documentation when the site is built (`docs/gen_reference.py`)."""

from __future__ import annotations

from engine.enrich import guard_rules as reason
from engine.enrich.holds import HELD
from engine.enrich.outcome import Outcome

OUTCOME_MEANINGS: dict[str, str] = {
    Outcome.ADDED: "INSi found this identity (00, traits coherent): its INS was written in PID-3",
    Outcome.VERIFIED: "the INS carried is INSi's active one for these traits: it leaves, canonical",
    Outcome.RECUPEREE: "INS retrieved for a provisional identity: kept for a document check, "
    "never written into the message",
    Outcome.NOT_FOUND: "INSi answered 01 (no identity for these traits): no INS; a person must "
    "check the identity",
    Outcome.SEVERAL_FOUND: "INSi answered 02 (several identities): no INS; a person must check",
    Outcome.INCOHERENT: "the identity contradicts INSi or itself (detail: what): every INS "
    "removed, reported to identity vigilance",
    Outcome.INVALID_TRAITS: "the local traits cannot be sent to INSi (detail: which): no call, "
    "no INS",
    Outcome.NOT_QUALIFIABLE: "the sender says these traits are not INSi's (identity unknown, "
    "lunar or corrected birth date): no call, no INS",
    Outcome.INVALID_INSI_ANSWER: "INSi's answer failed validation (key, trait, OID): no INS, not "
    "retried",
    Outcome.INSI_UNAVAILABLE: "INSi could not be asked (outage, configuration): delivered without "
    "INS; reprocess it once INSi is back",
    Outcome.HELD: "an earlier conflict of this patient awaits the vigilance team: no call, no INS",
    Outcome.NOT_APPLICABLE: "not a case for enrichment (detail: why): the message passes, the "
    "outbound guard still checks its INS",
}

DETAIL_MEANINGS: dict[str, str] = {
    "removed": "the outbound guard removed an INS that breaks the INS invariant (detail: which "
    "rule)",
    reason.NOT_VALI: "an INS without PID-32 exactly VALI (identity not qualified)",
    "fictive_or_doubtful": "PID-32 says the identity is fictitious (FICT) or doubtful (DOUT)",
    "several_statuses": "PID-32 holds more than one identity status",
    "unknown_status": "PID-32 holds a code outside table 0445",
    "malformed_status": "PID-32 holds a component or subcomponent",
    reason.IDENTITY_UNKNOWN: "PID-31 = Y: the identity is unknown",
    reason.LUNAR_BIRTH_DATE: "ZFD-1 valued: a lunar birth date INSi cannot qualify",
    reason.BIRTH_DATE_CORRECTED: "ZFD-4 = Y: the birth date was corrected after INSi",
    reason.PARTIAL_BIRTH_DATE: "PID-7 is not a full date (day or month 00)",
    reason.SEVERAL_INS: "two different INS in one PID: both removed",
    reason.INVALID_KEY: "the matricule fails its control key",
    reason.UNKNOWN_OID: "the OID is none of the four INS OIDs",
    reason.TEST_OID: "a test or demonstration INS in a production message",
    reason.NOT_CANONICAL: "the INS is not written in canonical form in PID-3",
    reason.INS_C: "an obsolete INS-C, which never leaves",
    reason.SAME_INS_TWICE: "the same INS twice: it leaves once, canonical",
    "ins_mismatch": "an INS carried that is not INSi's for these traits (another person's?)",
    "ins_in_history": "an INS that INSi lists only in its history",
    HELD: "this patient had another person's INS removed earlier, not yet marked handled in "
    "the identity work list",
}
