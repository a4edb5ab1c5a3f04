"""One lane of one destination: its pending entries, delivered strictly in entry order.

The worker reads a window of pending entries after the last one it handled (never the
whole queue), delivers them one by one, and waits on an event (set when the router has
written entries) or a short poll when there is nothing to do. An entry leaves the head
only when delivered or parked; while it fails, nothing behind it is sent (the lane is
visibly stuck: `queue status` shows the attempts and last error, each failure logs a
warning). `on_failure = "park"` parks a head that used up `max_attempts`; AR/CR park
at once in both modes, and so does the `max_mismatched_acks`-th ACK of another message
(a receiver that echoes another MSA-2 does so at every resend: it would hold the lane for
ever).

Marking an entry delivered is committed in the background while the next one is sent:
the worker only reads entries after the last one it sent, so an uncommitted mark cannot
make it send an entry twice. A crash before the mark commits means the entry is sent
again on restart: delivery is at-least-once.

Operators act from another process (`queue skip`), so the worker looks at the head's
status before every retry, and re-reads a window older than `WINDOW_MAX_AGE_S`. A skip
wins over a send already in flight: the entry stays skipped, and if the receiver
acknowledged it meanwhile, the store's audit and a warning say it was delivered anyway.

When engines share a store, a lane is delivered under its lease
(`engine.coordination.leases`): `run` gets the lease as a fence, sends nothing once the
lease is no longer valid, cuts a send that would run past the lease's deadline, and fences
its marks with it. Each `run` starts again from the lane's first pending entry, which is
where another engine left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable

from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics
from engine.config.settings import DestinationSettings
from engine.coordination.leases import Fence, NoLease
from engine.delivery.backoff import retry_delay
from engine.delivery.destination import Outcome, Result, Sender
from engine.delivery.relay import DeliveryMetrics
from engine.errors import LeaseLost
from engine.store.base import EntryStatus, OutboxEntry
from engine.store.roles import Outbox

log = get_logger("engine.delivery")

WINDOW = 100
POLL_S = 1.0  # idle: look for entries written by another process (`queue resend`)
CHECK_S = 1.0  # waiting to retry: look this often whether an operator took the head away
WINDOW_MAX_AGE_S = 1.0
MAX_UNCOMMITTED = 256  # delivered marks in flight before the worker waits for the store


class LaneWorker:
    """Delivers lane `lane` of `lanes` of one destination."""

    def __init__(
        self,
        store: Outbox,
        route: str,
        settings: DestinationSettings,
        sender: Sender,
        lane: int = 0,
        lanes: int = 1,
        clock: Callable[[], float] = time.time,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics or EngineMetrics()
        self._route = route
        self._settings = settings
        self._sender = sender
        self._lane = lane
        self._lanes = lanes
        self._clock = clock
        self._cursor = 0
        self._wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._marks: deque[tuple[OutboxEntry, asyncio.Future[bool]]] = deque()
        self._fence: Fence = NoLease()

    @property
    def name(self) -> str:
        suffix = f"/{self._lane}" if self._lanes > 1 else ""
        return f"{self._route}/{self._settings.name}{suffix}"

    @property
    def queue(self) -> tuple[str, str]:
        """(route, destination): the queue this lane delivers (a part of, in parallel)."""
        return self._route, self._settings.name

    def wake(self) -> None:
        """New entries may be waiting (called after routing)."""
        self._wakeup.set()

    @property
    def stopping(self) -> asyncio.Event:
        return self._stop

    def stop(self) -> None:
        """Finish the message being sent, then return from `run`."""
        self._stop.set()
        self._wakeup.set()

    async def run(self, fence: Fence | None = None) -> None:
        """Deliver until stopped or, with a lease as `fence`, until the lease is lost."""
        self._fence = fence or NoLease()
        self._cursor = 0
        try:
            while not self._stop.is_set() and self._fence.valid:
                try:
                    await self._step()
                except LeaseLost:
                    log.warning(
                        "delivery stopped: another engine holds this lane",
                        route=self._route,
                        destination=self._settings.name,
                    )
                    self._fence.revoke()
                except Exception as error:  # a bug or a store failure must not end the lane
                    log.error(
                        "delivery worker error, resuming",
                        route=self._route,
                        destination=self._settings.name,
                        exc_info=error,
                    )
                    await _wait(self._stop, POLL_S)
        finally:
            if self._fence.valid:
                await self._commit_marks()
            else:  # they would be refused, or wait on a store that cannot be reached
                for _, mark in self._marks:
                    mark.cancel()
                self._marks.clear()
            await self._sender.close()

    async def _step(self) -> None:
        self._wakeup.clear()
        window = await self._store.pending_entries(
            self._route, self._settings.name, self._cursor, WINDOW, self._lane, self._lanes
        )
        if not window:
            await self._commit_marks()
            # Start again from the oldest pending entry, so that an entry left pending
            # behind the cursor (its delivered mark failed to commit) is not forgotten.
            self._cursor = 0
            await _wait(self._wakeup, POLL_S)
            return
        fetched = self._clock()
        for entry in window:
            smooth = await self._deliver(entry)
            self._cursor = entry.entry_id
            if not smooth or self._stop.is_set() or self._clock() - fetched > WINDOW_MAX_AGE_S:
                return

    async def _deliver(self, entry: OutboxEntry) -> bool:
        """Send one entry until delivered, parked or taken away by an operator; True
        when it went at the first attempt (so the rest of the window is still fresh)."""
        attempts = entry.attempts
        mismatches = 0  # ACKs of another message: the receiver will not answer otherwise
        due = entry.next_attempt_at
        smooth = True
        while True:
            if due > self._clock() and not await self._wait_for_retry(entry, due):
                return False
            started = time.perf_counter()
            result = await self._send(entry)
            if result is None:
                return False
            elapsed = time.perf_counter() - started
            attempts += 1
            facts = {
                "route": self._route,
                "destination": self._settings.name,
                "control_id": entry.control_id,
                "entry_id": entry.entry_id,
                "attempts": attempts,
            }
            if result.outcome is Outcome.DELIVERED:
                await self._mark_delivered(entry, result.ack_code)
                self._metrics.delivery_attempted(self._route, self._settings.name, elapsed, True)
                log.debug(  # per message: the journey and metrics carry it
                    "message delivered",
                    **facts,
                    ack_code=result.ack_code or None,
                    duration_ms=round(elapsed * 1000, 3),
                )
                return smooth
            smooth = False
            settings = self._settings
            mismatches += result.mismatched
            reason = self._park_reason(result, attempts, mismatches)
            park = reason is not None
            error = (
                f"{result.error} ({reason}: parked)" if result.mismatched and park else result.error
            )
            delay = retry_delay(attempts, settings.backoff_base_s, settings.backoff_cap_s)
            due = self._clock() + delay
            await self._store.record_failure(
                entry.entry_id, error, due, park, fence=self._fence.lease
            )
            self._metrics.delivery_attempted(
                self._route,
                self._settings.name,
                elapsed,
                False,
                parked=park,
                mismatched=result.mismatched,
            )
            if park:
                log.error("message parked", **facts, error=error, outcome="parked", reason=reason)
                return False
            log.warning("delivery failed, will retry", **facts, error=result.error, delay_s=delay)

    def _park_reason(self, result: Result, attempts: int, mismatches: int) -> str | None:
        """Why a failed attempt parks its entry, or None to retry it."""
        settings = self._settings
        if result.outcome is Outcome.PARK:
            return "rejected by the receiver"
        if result.mismatched and mismatches >= settings.max_mismatched_acks:
            return f"{mismatches} mismatched ACKs"
        if settings.on_failure == "park" and attempts >= settings.max_attempts:
            return "max_attempts reached"
        return None

    async def _send(self, entry: OutboxEntry) -> Result | None:
        """Send one entry while the lease holds; None when it is not sent, or its send was
        cut at the lease's deadline (the connection is then closed: the outcome is unknown,
        and the next holder sends the entry again)."""
        remaining = self._fence.remaining()
        if remaining <= 0:
            return None
        try:
            async with asyncio.timeout(None if remaining == float("inf") else remaining):
                return await self._sender.send(entry)
        except TimeoutError:
            log.warning(
                "send cut at the end of this engine's lease",
                route=self._route,
                destination=self._settings.name,
                control_id=entry.control_id,
            )
            await self._sender.close()
            return None

    async def _wait_for_retry(self, entry: OutboxEntry, due: float) -> bool:
        """Wait until `due`; False if the engine stops, the lease is lost or the entry is
        no longer pending."""
        while (remaining := due - self._clock()) > 0:
            await _wait(self._stop, min(remaining, CHECK_S, self._fence.remaining()))
            if self._stop.is_set() or not self._fence.valid:
                return False
            status = await self._store.entry_status(entry.entry_id)
            if status is not EntryStatus.PENDING:
                log.warning(
                    "message left the queue while waiting to be retried",
                    route=self._route,
                    destination=self._settings.name,
                    control_id=entry.control_id,
                    entry_id=entry.entry_id,
                    status=status.value if status else "deleted",
                )
                return False
        return True

    async def _mark_delivered(self, entry: OutboxEntry, ack_code: str) -> None:
        mark = asyncio.ensure_future(
            self._store.mark_delivered(entry.entry_id, ack_code, fence=self._fence.lease)
        )
        mark.add_done_callback(_retrieved)  # a mark left behind by a cancelled lane
        self._marks.append((entry, mark))
        while self._marks and (self._marks[0][1].done() or len(self._marks) > MAX_UNCOMMITTED):
            await self._settle(*self._marks.popleft())

    async def _commit_marks(self) -> None:
        while self._marks:
            await self._settle(*self._marks.popleft())

    async def _settle(self, entry: OutboxEntry, mark: asyncio.Future[bool]) -> None:
        try:
            marked = await mark
        except LeaseLost:  # another engine has the lane: it sends this entry again
            self._fence.revoke()
            return
        except Exception as error:  # the message went out; only its record failed
            log.error(
                "delivered message not recorded as delivered: it may be sent again",
                route=self._route,
                destination=self._settings.name,
                control_id=entry.control_id,
                exc_info=error,
            )
            return
        if not marked:
            log.warning(
                "message delivered after an operator skipped it: the send was in flight; "
                "the entry stays skipped",
                route=self._route,
                destination=self._settings.name,
                control_id=entry.control_id,
                entry_id=entry.entry_id,
            )


def _retrieved(mark: asyncio.Future[bool]) -> None:
    """Take a mark's outcome even when no one awaits it (its failure is logged by
    `_settle` when it is awaited; a lane that lost its lease no longer cares)."""
    if not mark.cancelled():
        mark.exception()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set or `seconds` have passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
