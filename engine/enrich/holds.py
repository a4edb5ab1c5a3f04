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
from engine.steps.kind import StepContext
from engine.store.roles import ExtensionTables

HOLDS = "ins-holds"  # the shared resource's key

# Details of an outcome that removed an INS conflicting with the identity that carried it.
HOLDING_DETAILS = frozenset({"ins_mismatch", "several_ins"})
HELD = "earlier_conflict"  # detail of a message whose patient is held


def hold_key(header: Header, local_id: str | None) -> str | None:
    """The patient as the sender knows it: MSH-3, MSH-4 and the local identifier."""
    if not local_id:
        return None
    return "\x1f".join((header.sending_application, header.sending_facility, local_id))


class IdentityHolds:
    """Whether a patient is held; one per engine, shared by its enrichment steps and guards.

    On SQLite one engine uses the file (`engine.store.sqlite`), so every hold in it was
    written by this engine's steps and guards: the patients that may be held (those of the
    store when the steps were built, then each one a step or guard notes as it holds it) are
    kept in memory, and only they are asked of the store, where a person may since have
    released them. Any other patient is answered without a store read. On PostgreSQL
    another engine may route: every patient is asked of the store."""

    def __init__(self, store: ExtensionTables, held: set[str] | None) -> None:
        self._store = store
        self._held = queries_for(store).held
        self._may_hold = held  # None: ask the store each time

    @classmethod
    async def open(cls, store: ExtensionTables) -> IdentityHolds:
        every = queries_for(store).holds
        if every is None:
            return cls(store, None)
        return cls(store, {key for (key,) in await store.fetch(every)})

    def note(self, key: str) -> None:
        """A step or guard holds this patient in the record it is about to have written."""
        if self._may_hold is not None:
            self._may_hold.add(key)

    async def held(self, key: str) -> bool:
        if self._may_hold is not None and key not in self._may_hold:
            return False
        return bool(await self._store.fetch(self._held, (key,)))

    async def aclose(self) -> None:
        """Nothing to close (a shared resource of the engine's steps)."""


async def identity_holds(context: StepContext) -> IdentityHolds | None:
    """The engine's holds, shared by its steps and guards; None without a store."""
    store = context.store
    if store is None:
        return None
    return await context.resources.get(HOLDS, lambda: IdentityHolds.open(store))
