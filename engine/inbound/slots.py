"""Who keeps a connection slot at a listener's limit: senders that complete messages do.

Displacing the connection idle the longest let attackers push the real sender out: a
connection trickling a byte a second inside a block, or never reading its ACKs, is never
idle, while a sender idle 20 ms between messages is (measured: 2 ACKs a second out of 50).
So at the limit a newcomer displaces, first to last:

1. `never_completed`: a connection that has not completed a block and is not receiving one
   at speed (open the longest first);
2. `slow_block`, `ack_unread`: one that completed blocks but trickles the current one in
   (below `SLOW_BYTES_PER_S`) or leaves its ACK unread (last block the oldest first);
3. `idle`: one idle for more than `protect_s` since its last block (the same order).

A connection storing a message, receiving a block at speed, or that completed a block in
the last `protect_s` keeps its slot: when every slot is held so, the newcomer is refused.
A source address at `per_address` connections competes only with its own, and one address
opens at most `accepts_per_s` connections a second (bursts of `max_connections`); beyond,
the newcomer is refused before it can displace anyone. Sans-IO: the listener reports what
each connection does; the clock is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

SLOW_BYTES_PER_S = 1024.0
RATE_GRACE_S = 1.0  # a block's rate is its bytes over at least this long
TRACKED_ADDRESSES = 4096  # the brake forgets addresses with a full bucket beyond this


class Phase(Enum):
    OPENING = "opening"  # TLS handshake in progress
    IDLE = "idle"  # between blocks
    RECEIVING = "receiving"  # a block has started
    HANDLING = "handling"  # a block is being stored and answered: never displaced
    WRITING = "writing"  # its ACK waits for the peer to read


@dataclass(eq=False)
class Slot:
    """What one connection has done, as the policy needs it."""

    address: str
    opened_at: float
    phase: Phase = Phase.IDLE
    last_completed_at: float | None = None
    block_started_at: float = 0.0
    block_bytes: int = 0

    def block_started(self, now: float, size: int) -> None:
        self.phase = Phase.RECEIVING
        self.block_started_at = now
        self.block_bytes = size

    def completed(self, now: float) -> None:
        self.last_completed_at = now

    def standing(self, now: float, protect_s: float) -> tuple[int, float, str] | None:
        """(rank, staleness, class) when this connection may be displaced, else None."""
        if self.phase is Phase.HANDLING:
            return None
        stalled = ""
        if self.phase is Phase.WRITING:
            stalled = "ack_unread"
        elif self.phase is Phase.RECEIVING:
            elapsed = max(now - self.block_started_at, RATE_GRACE_S)
            stalled = "slow_block" if self.block_bytes / elapsed < SLOW_BYTES_PER_S else ""
        if self.last_completed_at is None:
            if stalled or self.phase is not Phase.RECEIVING:
                return 3, now - self.opened_at, "never_completed"
            return None
        since = now - self.last_completed_at
        if stalled:
            return 2, since, stalled
        if self.phase is Phase.IDLE and since > protect_s:
            return 1, since, "idle"
        return None


@dataclass(frozen=True)
class Decision:
    """A newcomer's slot (None: refused, and why) and the connection it displaces, if any."""

    slot: Slot | None
    refused: str = ""
    displaced: Slot | None = None
    displaced_as: str = ""


class AcceptBrake:
    """A token bucket per source address: `rate` connections a second, bursts of `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # address → (tokens, at)

    def allow(self, address: str) -> bool:
        now = self._clock()
        if len(self._buckets) >= TRACKED_ADDRESSES:
            self._buckets = {
                key: (tokens, at)
                for key, (tokens, at) in self._buckets.items()
                if tokens + (now - at) * self._rate < self._burst
            }
        tokens, at = self._buckets.get(address, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[address] = (tokens - 1.0 if allowed else tokens, now)
        return allowed


class Admission:
    """One listener's slots: admits, displaces or refuses each new connection."""

    def __init__(
        self,
        max_connections: int,
        per_address: int,
        accepts_per_s: float,
        protect_s: float,
        clock: Callable[[], float],
    ) -> None:
        self._max = max_connections
        self._per_address = per_address
        self._protect_s = protect_s
        self._clock = clock
        self._brake = AcceptBrake(accepts_per_s, max(accepts_per_s, max_connections), clock)
        self._slots: set[Slot] = set()

    def __len__(self) -> int:
        return len(self._slots)

    def admit(self, address: str, phase: Phase = Phase.IDLE) -> Decision:
        if not self._brake.allow(address):
            return Decision(None, "accept_rate")
        mine = [slot for slot in self._slots if slot.address == address]
        if len(mine) >= self._per_address and self._per_address < self._max:
            candidates, limit = mine, "max_connections_per_address"
        elif len(self._slots) >= self._max:
            candidates, limit = list(self._slots), "max_connections"
        else:
            candidates, limit = [], ""
        now = self._clock()
        victim, victim_class = None, ""
        if limit:
            ranked = [
                (standing, slot)
                for slot in candidates
                if (standing := slot.standing(now, self._protect_s)) is not None
            ]
            if not ranked:
                return Decision(None, limit)
            (_, _, victim_class), victim = max(ranked, key=lambda pair: pair[0][:2])
            self._slots.discard(victim)
        slot = Slot(address, now, phase)
        self._slots.add(slot)
        return Decision(slot, displaced=victim, displaced_as=victim_class)

    def release(self, slot: Slot) -> None:
        self._slots.discard(slot)

    def census(self) -> dict[str, int]:
        """Connections by the class they would be displaced as, or, for those that keep
        their slot, `completing` (completed a block lately) or `busy` (a first block
        arriving at speed or being stored)."""
        now = self._clock()
        counts: dict[str, int] = {}
        for slot in self._slots:
            standing = slot.standing(now, self._protect_s)
            if standing is not None:
                name = standing[2]
            else:
                name = "busy" if slot.last_completed_at is None else "completing"
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))
