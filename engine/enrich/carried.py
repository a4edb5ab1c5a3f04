"""The INS a message carries: where PAM FR puts it (PID-3) and where real feeds also write it.

A repetition of PID-2, PID-3 or PID-4 is INS-looking when its CX-5 says `INS` or one of the
French identifier types of the INS (`INS-NIR`, `INS-NIA`, `INS-NIR-TEST`, `INS-NIR-DEMO`,
table 0203 of the French extension, as FR Core writes them), its CX-4 names an INS OID (in
HD-2, or in HD-1 as some systems write it), or its namespace is `ASIP-SANTE-INS-NIR` or
`ASIP-SANTE-INS-NIA`; and, because a feed that misplaces a delimiter still carries an INS,
when any of these stands in another component after CX-1. Finding is lenient (case, spaces,
position) because what is found is then verified or removed; the billing NIR (`NH` under
`ASIP-SANTE-NIR` or the NIR's OID) is never touched.
The obsolete computed INS (INS-C: type, namespace or OID) is INS-looking too, so that it is
removed wherever an INS is rewritten, but it is never carried as an INS.
An INS-looking repetition with an empty matricule is a placeholder: no INS is carried, but
it is removed when the step rewrites the identifiers.

The OID decides what an INS is, not the namespace: a NIA written under
`ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.9&ISO` is a NIA, and leaves in the canonical form.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.enrich.outcome import ReceivedIns
from engine.hl7.escape import escape, unescape
from engine.hl7.message import HL7_NULL, Segment, Separators, component
from engine.ins.oids import InsOid, parse_oid
from engine.ins.result import Ins

INS_TYPE = "INS"  # CX-5 of an INS repetition, as PAM FR 2.11 writes it
# CX-5 of an INS in the French extension of table 0203 (FR Core's identifier types).
INS_TYPES = frozenset({INS_TYPE, "INS-NIR", "INS-NIA", "INS-NIR-TEST", "INS-NIR-DEMO"})
BILLING_NIR_TYPE = "NH"  # CX-5 of the billing NIR, under BILLING_NIR_NAMESPACE
BILLING_NIR_NAMESPACE = "ASIP-SANTE-NIR"
# The obsolete computed INS: never an INS, removed with the INS-looking repetitions.
INS_C_TYPE = "INS-C"
INS_C_NAMESPACE = "ASIP-SANTE-INS-C"
INS_C_OID = "1.2.250.1.213.1.4.2"
INS_FIELDS = (2, 3, 4)  # PID-2 patient id, PID-3 identifier list, PID-4 alternate id
INS_FIELD = 3  # where the one INS a message may carry leaves
# The INS namespaces (not ASIP-SANTE-INS-C, the obsolete computed INS, which is no INS).
_INS_NAMESPACES = frozenset({"ASIP-SANTE-INS-NIR", "ASIP-SANTE-INS-NIA"})
_INS_C_MARKS = frozenset({INS_C_TYPE, INS_C_NAMESPACE, INS_C_OID})
_MARKS = INS_TYPES | _INS_NAMESPACES | _INS_C_MARKS
_OID_ROOT = "1.2.250.1.213.1.4."  # the INS OIDs' and the INS-C's common root


@dataclass(frozen=True, slots=True)
class CarriedIns:
    """An INS repetition found in the message, as written (unescaped)."""

    field: int
    index: int
    matricule: str
    oid_text: str

    @property
    def canonical_matricule(self) -> str:
        """Upper case without spaces, as INSi writes it."""
        return "".join(self.matricule.split()).upper()

    @property
    def oid(self) -> InsOid | None:
        return parse_oid(self.oid_text)

    def is_(self, ins: Ins) -> bool:
        """The same matricule and the same authority as `ins`."""
        return self.canonical_matricule == str(ins.matricule) and self.oid is ins.oid

    def received(self) -> ReceivedIns:
        return ReceivedIns(self.canonical_matricule, self.oid_text.strip())


def looks_like_ins(cx: str, separators: Separators) -> bool:
    """An INS type, an INS OID or an INS namespace (or the INS-C's) in any component after
    CX-1 (where a feed that misplaces a delimiter still puts them); never the billing NIR."""
    if _OID_ROOT not in cx and "INS" not in cx.upper():  # every mark holds one or the other
        return False
    if is_billing_nir(cx, separators):
        return False
    return any(
        parse_oid(sub) is not None or sub.strip().upper() in _MARKS
        for part in cx.split(separators.component)[1:]
        for sub in part.split(separators.subcomponent)
    )


def is_billing_nir(cx: str, separators: Separators) -> bool:
    """`NH` under `ASIP-SANTE-NIR` or the NIR's OID (or no authority): the number the patient
    is billed on, which shares the INS-NIR's OID and is told apart by its type only."""
    if component(cx, 5, separators.component).strip().upper() != BILLING_NIR_TYPE:
        return False
    authority = component(cx, 4, separators.component).split(separators.subcomponent)
    namespace, oid = authority[0].strip(), authority[1].strip() if len(authority) > 1 else ""
    return namespace.upper() in ("", BILLING_NIR_NAMESPACE) and oid in ("", InsOid.NIR.value)


def is_ins_c(cx: str, separators: Separators) -> bool:
    """The obsolete computed INS, by its type, namespace or OID anywhere after CX-1."""
    return any(
        sub.strip().upper() in _INS_C_MARKS
        for part in cx.split(separators.component)[1:]
        for sub in part.split(separators.subcomponent)
    )


def named_oid(cx: str, separators: Separators) -> str:
    """The INS OID the repetition names: CX-4 HD-2, HD-1, then anywhere after CX-1; else
    CX-4 HD-2 as written."""
    authority = component(cx, 4, separators.component).split(separators.subcomponent)
    candidates = [
        *authority[1::-1],
        *(
            sub
            for part in cx.split(separators.component)[1:]
            for sub in part.split(separators.subcomponent)
        ),
    ]
    found = next((hd for hd in candidates if parse_oid(hd) is not None), None)
    return found if found is not None else (authority[1] if len(authority) > 1 else "")


def ins_positions(pid: Segment) -> Iterator[tuple[int, int, str]]:
    """(field, repetition index, text) of every INS-looking repetition, placeholders too."""
    separators = pid.separators
    for number in INS_FIELDS:
        for index, cx in enumerate(pid.repetitions(number)):
            if looks_like_ins(cx, separators):
                yield number, index, cx


def carried_ins(pid: Segment) -> tuple[CarriedIns, ...]:
    """The INS the message carries (placeholders with an empty matricule and INS-C are
    none)."""
    separators = pid.separators
    found = []
    for number, index, cx in ins_positions(pid):
        matricule = unescape(component(cx, 1, separators.component), separators).strip()
        if matricule in ("", HL7_NULL) or is_ins_c(cx, separators):
            continue
        oid = unescape(named_oid(cx, separators), separators)
        found.append(CarriedIns(number, index, matricule, oid))
    return tuple(found)


def canonical_repetition(ins: Ins, separators: Separators) -> str:
    """`<matricule>^^^<namespace>&<OID>&ISO^INS`, the namespace matching the OID."""
    authority = separators.subcomponent.join(
        escape(part, separators) for part in (ins.oid.hl7_namespace, ins.oid.value, "ISO")
    )
    return separators.component.join((str(ins.matricule), "", "", authority, INS_TYPE))
