"""What an operator's action does to an outbox entry, whatever the store's backend.

The rules `queue resend`, `queue skip` and `reprocess` follow, the words they answer with,
and the audit line of a delivery that raced a skip, written once so that both backends say
the same.
"""

from __future__ import annotations

from engine.store.base import ActionResult, EntryStatus, MessageStatus, Reprocessed

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


def copy_suffix(number: int) -> str:
    """What the `number`th reprocessed copy of a message appends to its MSH-10: the copy is
    a message of its own (a receiver that drops a control id it has seen must not drop it),
    and its receiver can tell it from the original and trace it back."""
    return f"-R{number}"


def reprocess_refusal(
    message_id: int, status: str | None, copy_id: int | None
) -> Reprocessed | None:
    """Why a message cannot be reprocessed (`copy_id`: its copy made by this same call)."""
    if status is None:
        return Reprocessed(message_id, False, "no such message (it may have been pruned)")
    if status == MessageStatus.RECEIVED:
        return Reprocessed(
            message_id, False, "not routed yet: its route's current steps will run on it"
        )
    if copy_id is not None:
        return Reprocessed(message_id, False, f"already reprocessed as {copy_id} just now")
    return None


def reprocessed(message_id: int, copy_id: int, control_id: str) -> Reprocessed:
    return Reprocessed(
        message_id, True, f"reprocessed as {copy_id} ({control_id})", copy_id, control_id
    )
