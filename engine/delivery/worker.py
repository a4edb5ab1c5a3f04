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

Marking entries delivered is committed in the background while the next ones are sent, in
batches: one write records every mark kept while the previous write was under way (no
timer: a lane that delivers one message at a time records one mark at a time, a busy one
records many per write). The worker only reads entries after the last one it sent, so an
unrecorded mark cannot make it send an entry twice. A crash before the marks commit means
their entries are sent again on restart: delivery is at-least-once.

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
import functools
import time
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
        self._unrecorded: list[tuple[OutboxEntry, str]] = []  # delivered, not yet asked
        self._recording: asyncio.Future[list[bool]] | None = None  # the batch being written
        self._in_flight = 0  # marks in that batch
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
                self._unrecorded.clear()
                if self._recording is not None:
                    self._recording.cancel()
            await self._sender.close()

    async def _step(self) -> None:
        self._wakeup.clear()
        window = await self._store.pending_entries(
            self._route, self._settings.name, self._cursor, WINDOW, self._lane, self._lanes
        )
        if window:
            fetched = self._clock()
            for entry in window:
                smooth = await self._deliver(entry)
                self._cursor = entry.entry_id
                if not smooth or self._stop.is_set() or self._clock() - fetched > WINDOW_MAX_AGE_S:
                    return
            # A short window was the whole queue when it was read; entries written since
            # have set `_wakeup` (the router wakes the lanes after it commits).
            if len(window) == WINDOW or self._wakeup.is_set():
                return
        await self._commit_marks()
        # Start again from the oldest pending entry, so that an entry left pending
        # behind the cursor (its delivered mark failed to commit) is not forgotten.
        self._cursor = 0
        await self._idle()

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
        if remaining == float("inf"):  # no lease: no deadline to keep
            return await self._sender.send(entry)
        try:
            async with asyncio.timeout(remaining):
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

    async def _idle(self) -> None:
        """Wait for a wake-up or a stop, or POLL_S (the poll sets `_wakeup` itself)."""
        if self._wakeup.is_set():
            return
        poll = asyncio.get_running_loop().call_later(POLL_S, self._wakeup.set)
        try:
            await self._wakeup.wait()
        finally:
            poll.cancel()

    async def _mark_delivered(self, entry: OutboxEntry, ack_code: str) -> None:
        """Keep the mark for the next batch; wait while MAX_UNCOMMITTED are unrecorded."""
        self._unrecorded.append((entry, ack_code))
        if self._recording is None:
            self._record()
        elif len(self._unrecorded) + self._in_flight > MAX_UNCOMMITTED:
            await self._recorded()

    def _record(self) -> None:
        """Ask the store to record the marks kept so far, in one write."""
        batch, self._unrecorded = self._unrecorded, []
        marks = [(entry.entry_id, ack_code) for entry, ack_code in batch]
        recording = asyncio.ensure_future(
            self._store.mark_delivered_many(marks, fence=self._fence.lease)
        )
        recording.add_done_callback(functools.partial(self._settle, batch))
        self._recording, self._in_flight = recording, len(batch)

    async def _recorded(self) -> None:
        """Wait until the batch being written has its answer (the next one has started)."""
        recording = self._recording
        if recording is not None:
            await asyncio.wait((recording,))

    async def _commit_marks(self) -> None:
        while self._recording is not None:
            await self._recorded()

    def _settle(
        self, batch: list[tuple[OutboxEntry, str]], recording: asyncio.Future[list[bool]]
    ) -> None:
        """Take a batch's answer, then send the marks kept meanwhile as the next batch."""
        self._recording, self._in_flight = None, 0
        if recording.cancelled():  # a cancelled lane: its entries are sent again
            return
        error = recording.exception()
        if isinstance(error, LeaseLost):  # another engine has the lane: it sends them again
            self._fence.revoke()
            self._unrecorded.clear()
            return
        if error is not None:  # the messages went out; only their record failed
            log.error(
                "delivered messages not recorded as delivered: they may be sent again",
                route=self._route,
                destination=self._settings.name,
                count=len(batch),
                first_control_id=batch[0][0].control_id,
                exc_info=error,
            )
        else:
            for (entry, _), marked in zip(batch, recording.result(), strict=True):
                if not marked:
                    log.warning(
                        "message delivered after an operator skipped it: the send was in "
                        "flight; the entry stays skipped",
                        route=self._route,
                        destination=self._settings.name,
                        control_id=entry.control_id,
                        entry_id=entry.entry_id,
                    )
        if self._unrecorded:
            self._record()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set or `seconds` have passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
