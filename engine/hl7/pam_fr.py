"""The checks the `pam_fr` validation profile adds to HL7 v2.5 structure (IHE PAM France 2.11).

A few rules of the French national extension, those an interface most often meets:

- MSH-12 is 2.5 (PAM FR is built on HL7 v2.5);
- PID-5 has a birth name (name type code L);
- a movement event (A01 A02 A03 A04 A06 A07 A11 A12 A13 A21 A22 A52 A53 A54 A55) has a ZBE
  segment with ZBE-1 (movement identifier) and ZBE-4 (INSERT, UPDATE or CANCEL).
"""

from __future__ import annotations

from engine.hl7.ack import AckError, ErrorCode
from engine.hl7.header import Header
from engine.hl7.message import Message, component

MOVEMENT_EVENTS = frozenset("A01 A02 A03 A04 A06 A07 A11 A12 A13 A21 A22 A52 A53 A54 A55".split())
ACTIONS = frozenset({"INSERT", "UPDATE", "CANCEL"})


def pam_fr_problem(message: Message, header: Header) -> AckError | None:
    """The first PAM FR rule `message` breaks, or None."""
    if header.version_id != "2.5":
        return AckError(ErrorCode.UNSUPPORTED_VERSION, "MSH^1^12", "PAM FR: HL7 v2.5 expected")
    pid = message.segment("PID")
    separator = message.separators.component
    if pid is not None and not any(
        component(name, 7, separator) == "L" for name in pid.repetitions(5)
    ):
        return AckError(
            ErrorCode.REQUIRED_FIELD_MISSING, "PID^1^5", "PAM FR: PID-5 birth name (L) missing"
        )
    if header.message_type != "ADT" or header.trigger not in MOVEMENT_EVENTS:
        return None
    zbe = message.segment("ZBE")
    if zbe is None:
        return AckError(ErrorCode.SEGMENT_SEQUENCE, "ZBE", "PAM FR: ZBE segment missing")
    for number, what in ((1, "movement identifier"), (4, "action")):
        if not zbe.field(number):
            return AckError(
                ErrorCode.REQUIRED_FIELD_MISSING,
                f"ZBE^1^{number}",
                f"PAM FR: ZBE-{number} {what} missing",
            )
    if zbe.field(4) not in ACTIONS:
        return AckError(
            ErrorCode.TABLE_VALUE_NOT_FOUND, "ZBE^1^4", "PAM FR: ZBE-4 INSERT, UPDATE or CANCEL"
        )
    return None
