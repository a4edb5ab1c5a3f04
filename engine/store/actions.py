"""What an operator's action does to an outbox entry, whatever the store's backend.

The rules `queue resend` and `queue skip` follow, the words they answer with, and the audit
line of a delivery that raced a skip, written once so that both backends say the same.
"""

from __future__ import annotations

from engine.store.base import ActionResult, EntryStatus

OPEN = (EntryStatus.PENDING, EntryStatus.PARKED)


def resend_refusal(
    entry_id: int, status: EntryStatus | None, copy_id: int | None
) -> ActionResult | None:
    """Why an entry cannot be resent (`copy_id`: its copy, when already resent), or None."""
    if status is None:
        return ActionResult(entry_id, False, "no such entry")
    if status is EntryStatus.PENDING:
        return ActionResult(entry_id, False, "still pending: nothing to do")
    if status is EntryStatus.RESENT:
        return ActionResult(entry_id, False, f"already resent as {copy_id}")
    return None


def resent(entry_id: int, new_id: int) -> ActionResult:
    return ActionResult(entry_id, True, f"resent as {new_id}", new_id)


def becomes_resent(status: EntryStatus) -> bool:
    """Whether a resent entry's own status becomes `resent` (a delivered one stays so)."""
    return status is not EntryStatus.DELIVERED


def skip_refusal(entry_id: int, status: EntryStatus | None) -> ActionResult | None:
    """Why an entry cannot be skipped, or None."""
    if status is None:
        return ActionResult(entry_id, False, "no such entry")
    if status not in OPEN:
        return ActionResult(entry_id, False, f"already {status.value}")
    return None


def skipped(entry_id: int) -> ActionResult:
    return ActionResult(entry_id, True, "skipped")


def delivered_after_skip(ack_code: str) -> tuple[str, str]:
    """The audit (action, reason) of a delivery whose send was in flight when an operator
    skipped the entry: the skip stands, and the audit says the receiver got it anyway."""
    answer = f", ACK {ack_code}" if ack_code else ""
    return (
        "delivered after skip",
        f"the send was in flight when the entry was skipped: delivered{answer}",
    )
