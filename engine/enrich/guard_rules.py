"""The INS invariant: when an identifier may leave a message as an INS. Pure functions.

Checked on every PID of every message that leaves (`engine.enrich.guard`), whatever the
message's type or event and whatever the route's steps did. An INS may leave only when:

1. it is recognised as an INS whatever its spelling (`engine.enrich.carried`: CX-5 `INS`
   or a French INS type, an INS OID or namespace anywhere in CX-4, PID-2/3/4), and it is no
   INS-C, the obsolete computed INS;
2. PID-32 is exactly one status, `VALI` (trailing spaces insignificant), no `FICT`/`DOUT`;
3. the traits are qualifiable: PID-31 is not `Y`, no ZFD has ZFD-1 valued or ZFD-4 = `Y`,
   PID-7 is a full date;
4. it is well formed: its matricule passes its key, its OID is one of the four INS OIDs, a
   test or demonstration OID only outside production messages (unless the route allows
   them), written in canonical form in PID-3;
5. it is the PID's only INS (the same one written twice leaves once).

Anything else: every INS of that PID is removed, for the first reason found (in the order
above). A PID that passes leaves unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.enrich.carried import (
    INS_FIELD,
    canonical_repetition,
    ins_positions,
    is_ins_c,
    named_oid,
)
from engine.enrich.identity import YES, SourceFlags, is_full_date, read_text
from engine.enrich.outcome import ReceivedIns
from engine.enrich.reliability import VALIDATED, read_reliability
from engine.hl7.escape import unescape
from engine.hl7.message import HL7_NULL, Segment, Separators, component
from engine.ins.errors import MatriculeError
from engine.ins.matricule import Matricule
from engine.ins.oids import InsOid, parse_oid
from engine.ins.result import Ins

PRODUCTION = "P"  # MSH-11: a production message
_TEST_OIDS = frozenset({InsOid.TEST_NIR, InsOid.DEMO_NIR})

# Reasons, in the order they are looked for (short codes: logged, shown, counted).
NOT_VALI = "ins_without_vali"
IDENTITY_UNKNOWN = "identity_unknown"
LUNAR_BIRTH_DATE = "lunar_birth_date"
BIRTH_DATE_CORRECTED = "birth_date_corrected"
PARTIAL_BIRTH_DATE = "partial_birth_date"
SEVERAL_INS = "several_ins"
INVALID_KEY = "invalid_key"
UNKNOWN_OID = "unknown_oid"
TEST_OID = "test_oid_in_production"
NOT_CANONICAL = "not_canonical"
INS_C = "ins_c"  # an INS-C was removed (the INS beside it, if any, may leave)
SAME_INS_TWICE = "same_ins_twice"  # copies removed, the INS leaves once
# Reasons that remove an INS a person must look at (the others only tidy the PID).
TIDYING = frozenset({INS_C, SAME_INS_TWICE})


@dataclass(frozen=True, slots=True)
class Claim:
    """An INS-looking repetition with a matricule: what it claims, as written."""

    field: int
    text: str  # the repetition, escaped as received
    matricule: str  # CX-1 unescaped, upper case, spaces removed
    oid_text: str

    @property
    def identity(self) -> tuple[str, str]:
        """Two claims are the same INS when matricule and authority agree."""
        return self.matricule, self.oid_text

    def received(self) -> ReceivedIns:
        return ReceivedIns(self.matricule, self.oid_text)


@dataclass(frozen=True, slots=True)
class PidVerdict:
    """What the guard does to one PID: `keep` leaves (None: no INS at all), every other
    INS-looking repetition goes; `reason` is why (the first one found)."""

    keep: Ins | None
    reason: str
    removed: tuple[ReceivedIns, ...]


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the rules read outside the PID: MSH-11 and the ZFD segments."""

    production: bool
    source: SourceFlags


def _claims(pid: Segment) -> list[Claim]:
    """The INS the PID claims, INS-C included (a placeholder with no matricule claims none)."""
    separators = pid.separators
    claims: list[Claim] = []
    for number, _, cx in ins_positions(pid):
        matricule = unescape(component(cx, 1, separators.component), separators)
        if matricule.strip() in ("", HL7_NULL):
            continue
        oid = unescape(named_oid(cx, separators), separators).strip()
        claims.append(Claim(number, cx, "".join(matricule.split()).upper(), oid))
    return claims


def judge(pid: Segment, facts: MessageFacts, allow_test_oids: bool) -> PidVerdict | None:
    """The guard's verdict on one PID, or None when it leaves unchanged."""
    claims = _claims(pid)
    if not claims:
        return None
    separators = pid.separators
    ins_c = [claim for claim in claims if is_ins_c(claim.text, separators)]
    claimed = [claim for claim in claims if claim not in ins_c]
    if not claimed:
        return PidVerdict(None, INS_C, tuple(claim.received() for claim in ins_c))
    every = tuple(claim.received() for claim in claims)
    reason = _identity_reason(pid, facts) or _one_person_reason(claimed)
    if reason is not None:
        return PidVerdict(None, reason, every)
    ins, reason = _well_formed(claimed, separators, facts.production and not allow_test_oids)
    if ins is None:
        return PidVerdict(None, reason, every)
    if len(claimed) == 1 and not ins_c:
        return None
    canonical = canonical_repetition(ins, separators)
    kept = next(c for c in claimed if c.field == INS_FIELD and c.text == canonical)
    removed = tuple(claim.received() for claim in claims if claim is not kept)
    return PidVerdict(ins, INS_C if ins_c else SAME_INS_TWICE, removed)


def _identity_reason(pid: Segment, facts: MessageFacts) -> str | None:
    """Rules 2 and 3: may this identity carry an INS at all?"""
    separators = pid.separators
    reliability = read_reliability(pid.field(32), separators)
    if reliability.problem is not None:
        return reliability.problem
    if reliability.status != VALIDATED:
        return NOT_VALI
    if read_text(pid.field(31), separators).upper() == YES:
        return IDENTITY_UNKNOWN
    if facts.source.lunar_birth_date:
        return LUNAR_BIRTH_DATE
    if facts.source.birth_date_corrected:
        return BIRTH_DATE_CORRECTED
    if not is_full_date(read_text(pid.field(7), separators)):
        return PARTIAL_BIRTH_DATE
    return None


def _one_person_reason(claimed: Sequence[Claim]) -> str | None:
    """Rule 5: two different INS in one PID are two persons' at best."""
    return SEVERAL_INS if len({claim.identity for claim in claimed}) > 1 else None


def _well_formed(
    claimed: Sequence[Claim], separators: Separators, production: bool
) -> tuple[Ins | None, str]:
    """Rule 4, for the one INS the PID claims (maybe several times): the INS, or why not."""
    first = claimed[0]
    try:
        matricule = Matricule.parse(first.matricule)
    except MatriculeError:
        return None, INVALID_KEY
    oid = parse_oid(first.oid_text)
    if oid is None:
        return None, UNKNOWN_OID
    if production and oid in _TEST_OIDS:
        return None, TEST_OID
    ins = Ins(matricule, oid)
    canonical = canonical_repetition(ins, separators)
    if not any(claim.field == INS_FIELD and claim.text == canonical for claim in claimed):
        return None, NOT_CANONICAL
    return ins, ""
