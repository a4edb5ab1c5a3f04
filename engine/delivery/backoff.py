"""How long a destination waits before the next attempt at a message that failed.

Exponential (base, 2×base, 4×base…) up to a cap, without jitter: one engine retries one
head message per lane, so there is no crowd of clients to spread out, and an operator
reading `queue status` can predict the next attempt.
"""

from __future__ import annotations


def retry_delay(attempts: int, base_s: float, cap_s: float) -> float:
    """The wait after the `attempts`-th failed attempt (1 for the first failure)."""
    exponent = max(attempts - 1, 0)
    if exponent >= 64:  # 2**64 × base is past any cap; avoid a float overflow
        return cap_s
    return min(base_s * 2**exponent, cap_s)
