"""Does INSi confirm the INS a message carries? A comparison, nothing else.

The carried INS (every one the message holds, wherever it hid) are compared with INSi's
active INS and its history, matricule and OID both:

- the active one is carried, and anything else carried is in INSi's history: verified (a
  system that kept the old NIA beside the new NIR sends exactly this); the history is dropped;
- only INS from INSi's history are carried: the message is out of date;
- anything else (another person's INS, another authority, a matricule with a bad key):
  a mismatch.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from engine.enrich.carried import CarriedIns
from engine.ins.result import Ins


class Verdict(enum.Enum):
    VERIFIED = "verified"
    HISTORY_DROPPED = "history_dropped"  # verified; INS INSi lists as earlier were dropped
    IN_HISTORY = "ins_in_history"
    MISMATCH = "ins_mismatch"


def verify(carried: Sequence[CarriedIns], active: Ins, history: Sequence[Ins]) -> Verdict:
    """The verdict on the carried INS (at least one) given INSi's answer."""
    is_active = [ins.is_(active) for ins in carried]
    in_history = [any(ins.is_(old) for old in history) for ins in carried]
    if not all(a or h for a, h in zip(is_active, in_history, strict=True)):
        return Verdict.MISMATCH
    if not any(is_active):
        return Verdict.IN_HISTORY
    return Verdict.VERIFIED if all(is_active) else Verdict.HISTORY_DROPPED
