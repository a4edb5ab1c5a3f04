"""Leases: which engine routes, and which delivers each lane, when several share a store.

Every engine receives; routing, each delivery lane and retention are each done by exactly
one engine at a time, the holder of that job's lease (a row in the store: holder, token,
expiry on the database's clock). The `LeaseKeeper` claims the leases this engine wants,
renews those it holds every third of `lease_s`, and claims a lease held by another engine
again just after that engine's lease would expire (or a third of `lease_s` later, at the
latest), so a dead holder is replaced within `lease_s` of its last renewal. A lease given
up by an engine that stops cleanly is claimed at once by the others (`poke`, on the
store's notice).

Safety does not rest on the other engines' patience alone: a holder counts its lease valid
only until `lease_s` after it *sent* its last successful claim (its own monotonic clock).
The database set the expiry from a later instant, so the holder's deadline always comes
first. At its deadline the lease is lost locally, whether or not the database can be
reached: the work under it is stopped (a delivery worker checks before each send and cuts
a send that runs past the deadline), before any other engine can take the lease. Writes
made under a lease carry its token, and the store refuses them once the lease has changed
holder (`LeaseLost`).

A store only one engine can open (SQLite) has one holder by construction: the keeper then
takes every lease at once, whatever an engine killed earlier left in the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from engine.base.logs import get_logger
from engine.store.base import EngineState, Lease
from engine.store.roles import Leases

log = get_logger("engine.coordination.leases")

RETRY_S = 1.0  # after a failed claim (the store unreachable): try again this soon
TAKEOVER_DELAY_S = 0.05  # claim this long after another holder's lease would expire
# Work under a lease stops this long before the lease's deadline: covers the event loop
# being late to notice, and the instant between the check and the bytes going out.
SAFETY_S = 0.5
RELEASE_S = 2.0  # a clean stop waits this long at most to give its leases up


def engine_identity() -> EngineState:
    """This engine process as the store records it: `host/pid/random` is unique even when
    a PID is reused on a restarted machine."""
    host = socket.gethostname()
    pid = os.getpid()
    now = time.time()
    return EngineState(f"{host}/{pid}/{secrets.token_hex(2)}", host, pid, now, now)


@dataclass
class HeldLease:
    """A lease as its holder sees it: valid until a deadline on this engine's clock."""

    lease: Lease
    deadline: float
    clock: Callable[[], float] = time.monotonic
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    def remaining(self) -> float:
        """Seconds the work under this lease may still go on (0 once lost)."""
        if self.lost.is_set():
            return 0.0
        return max(self.deadline - SAFETY_S - self.clock(), 0.0)

    @property
    def valid(self) -> bool:
        return self.remaining() > 0

    def revoke(self) -> None:
        """The store refused a write under this lease (`LeaseLost`): stop now; the keeper
        finds out at its next claim whether it is this engine's again."""
        self.lost.set()


class NoLease:
    """The fence of work that needs none (tests, and tools that run one worker): always
    valid, and marks are not fenced."""

    lease: Lease | None = None

    def remaining(self) -> float:
        return float("inf")

    @property
    def valid(self) -> bool:
        return True

    def revoke(self) -> None:
        """Nothing to give up."""


Fence = HeldLease | NoLease


@dataclass
class _Wanted:
    name: str
    held: HeldLease | None = None
    next_claim: float = 0.0
    acquired: asyncio.Event = field(default_factory=asyncio.Event)
    expiry: asyncio.TimerHandle | None = None


class LeaseKeeper:
    """Claims and renews this engine's leases; `acquire` waits for one to be held."""

    def __init__(
        self,
        store: Leases,
        lease_s: float,
        engine: EngineState | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._lease_s = lease_s
        self.engine = engine or engine_identity()
        self._clock = clock
        self._exclusive = not store.shared
        self._wanted: dict[str, _Wanted] = {}
        self._changed = asyncio.Event()
        self._stopped = False

    async def acquire(self, name: str) -> HeldLease:
        """Wait until this engine holds lease `name` (claimed from now on)."""
        wanted = self._wanted.setdefault(name, _Wanted(name))
        self._changed.set()
        while wanted.held is None or not wanted.held.valid:
            wanted.acquired.clear()
            await wanted.acquired.wait()
        return wanted.held

    def poke(self) -> None:
        """A lease was given up somewhere (another engine stopped): claim those this
        engine waits for now, rather than at their next turn."""
        for wanted in self._wanted.values():
            if wanted.held is None:
                wanted.next_claim = 0.0
        self._changed.set()

    async def run(self) -> None:
        """Claim and renew until cancelled or stopped."""
        while not self._stopped:
            now = self._clock()
            due = [wanted for wanted in self._wanted.values() if wanted.next_claim <= now]
            if due:
                await asyncio.gather(*(self._claim(wanted) for wanted in due))
                with contextlib.suppress(Exception):  # a sign of life; a claim will report
                    await self._store.engine_seen(self.engine)
            self._changed.clear()
            upcoming = [wanted.next_claim for wanted in self._wanted.values()]
            delay = max(min(upcoming, default=now + self._lease_s) - self._clock(), 0.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._changed.wait()

    async def _claim(self, wanted: _Wanted) -> None:
        sent = self._clock()
        renew_every = self._lease_s / 3
        try:
            async with asyncio.timeout(renew_every):
                claim = await self._store.claim_lease(
                    wanted.name, self.engine.engine_id, self._lease_s, force=self._exclusive
                )
        except Exception as error:  # the store unreachable: the deadline decides
            log.warning("lease claim failed", lease=wanted.name, error=type(error).__name__)
            wanted.next_claim = self._clock() + min(RETRY_S, renew_every)
            return
        if self._stopped:
            return  # stop() gave everything up meanwhile; its release covers this claim
        if claim.lease is None:
            if wanted.held is not None:
                self._lose(wanted, f"taken by {claim.holder}")
            wanted.next_claim = self._clock() + min(
                claim.remaining_s + TAKEOVER_DELAY_S, renew_every
            )
            return
        current = wanted.held
        if current is not None and current.lease == claim.lease and not current.lost.is_set():
            current.deadline = sent + self._lease_s  # renewed: the same tenure goes on
        else:
            if current is not None:
                self._lose(wanted, "lease changed hands")
            wanted.held = HeldLease(claim.lease, sent + self._lease_s, self._clock)
            log.info("lease acquired", lease=wanted.name, engine=self.engine.engine_id)
        self._arm_expiry(wanted)
        wanted.acquired.set()
        wanted.next_claim = sent + renew_every

    def _arm_expiry(self, wanted: _Wanted) -> None:
        """Lose the lease locally at its deadline, even if no claim ever returns."""
        if wanted.expiry is not None:
            wanted.expiry.cancel()
        assert wanted.held is not None
        delay = max(wanted.held.remaining(), 0.0)
        wanted.expiry = asyncio.get_running_loop().call_later(
            delay, self._expire, wanted, wanted.held
        )

    def _expire(self, wanted: _Wanted, held: HeldLease) -> None:
        if wanted.held is not held:
            return
        if held.valid:  # renewed meanwhile, or the timer fired a hair early
            self._arm_expiry(wanted)
        else:
            self._lose(wanted, "not renewed in time")

    def _lose(self, wanted: _Wanted, reason: str) -> None:
        held, wanted.held = wanted.held, None
        if held is None:
            return
        held.lost.set()
        if wanted.expiry is not None:
            wanted.expiry.cancel()
        log.warning("lease lost, its work stops", lease=wanted.name, reason=reason)

    async def give_up(self, name: str) -> None:
        """Stop claiming lease `name` and release it if held, so that another engine may
        take it at once: its work is gone here (a destination a reload removed)."""
        wanted = self._wanted.pop(name, None)
        if wanted is None:
            return
        held, wanted.held = wanted.held, None
        if wanted.expiry is not None:
            wanted.expiry.cancel()
        if held is None:
            return
        held.lost.set()
        with contextlib.suppress(Exception):  # TimeoutError included: it expires by itself
            async with asyncio.timeout(RELEASE_S):
                await self._store.release_lease(held.lease)

    async def stop(self) -> None:
        """Give up every lease held (other engines take over at once) and say goodbye;
        within `RELEASE_S`: a lease the store cannot be told about expires by itself."""
        self._stopped = True
        self._changed.set()
        released = []
        for wanted in self._wanted.values():
            held, wanted.held = wanted.held, None
            if wanted.expiry is not None:
                wanted.expiry.cancel()
            if held is not None:
                held.lost.set()
                released.append(self._store.release_lease(held.lease))
        with contextlib.suppress(Exception):  # TimeoutError included
            async with asyncio.timeout(RELEASE_S):
                await asyncio.gather(*released, self._store.engine_stopped(self.engine.engine_id))


async def under_lease(
    keeper: LeaseKeeper,
    name: str,
    work: Callable[[HeldLease], Awaitable[None]],
    stopping: asyncio.Event | None = None,
) -> None:
    """Run `work` whenever this engine holds lease `name`, and cancel it when the lease is
    lost; until `stopping` is set (then `work` is expected to return by itself) or this is
    cancelled. `work` may return early when it sees its lease lost."""
    stopping = stopping or asyncio.Event()
    while not stopping.is_set():
        held = await _unless(stopping, keeper.acquire(name))
        if held is None:
            return
        task = asyncio.ensure_future(work(held))
        lost = asyncio.ensure_future(held.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _unless(stopping: asyncio.Event, waited: Awaitable[HeldLease]) -> HeldLease | None:
    """`waited`'s result, or None if `stopping` is set first."""
    task = asyncio.ensure_future(waited)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
    return task.result() if task.done() and not task.cancelled() else None
