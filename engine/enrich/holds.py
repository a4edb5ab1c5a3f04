"""Decisions that survive a second pass: a patient whose record carried a conflicting INS is
kept out of enrichment until the vigilance team has handled it.

When the engine removes another person's INS from a VALI identity (`ins_mismatch`), or two
different INS (`several_ins`), its output is a VALI identity without INS. Fed back in (a
replay, the same feed sent again), that would be searched and INSi's INS attached: the
referral to identity vigilance would be lost in the second pass. So the outcome record
names the patient it holds (`hold`: sender and local identifier), and while a held outcome
has no "handled" mark on the work list, the same engine neither searches nor lets an INS
through for that patient (outcome `held`). Marking the row handled releases the patient.
Without a store (offline `enrich`, route tests, the embedding API) nothing is held.
"""

from __future__ import annotations

from engine.enrich.store import queries_for
from engine.hl7.header import Header
from engine.store.roles import ExtensionTables

# Details of an outcome that removed an INS conflicting with the identity that carried it.
HOLDING_DETAILS = frozenset({"ins_mismatch", "several_ins"})
HELD = "earlier_conflict"  # detail of a message whose patient is held


def hold_key(header: Header, local_id: str | None) -> str | None:
    """The patient as the sender knows it: MSH-3, MSH-4 and the local identifier."""
    if not local_id:
        return None
    return "\x1f".join((header.sending_application, header.sending_facility, local_id))


class IdentityHolds:
    """Asks the store whether a patient is held."""

    def __init__(self, store: ExtensionTables) -> None:
        self._store = store
        self._held = queries_for(store).held

    async def held(self, key: str) -> bool:
        return bool(await self._store.fetch(self._held, (key,)))
