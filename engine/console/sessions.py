"""Console sessions and the brake on password guessing, both kept in memory.

A session is a random token in a cookie (HttpOnly, SameSite=Strict, Secure over TLS) with
its own CSRF token; it ends after `session_idle_s` without a request, `session_max_s` after
login, at logout, or when the engine restarts (everyone logs in again). Wrong passwords are
counted per user name and per client address over `login_lockout_s`: past
`login_max_failures`, logins for that name or from that address are refused without a
password check until the oldest failure leaves the window.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.console.users import Role

MAX_SESSIONS = 10_000
MAX_THROTTLED_KEYS = 100_000


@dataclass
class Session:
    token: str
    user: str
    role: Role
    csrf: str
    created: float
    seen: float
    notice: str = ""  # what the last action did, shown once on the next page

    def take_notice(self) -> str:
        notice, self.notice = self.notice, ""
        return notice


class Sessions:
    """Open sessions by token; expired ones are dropped when looked up."""

    def __init__(
        self, idle_s: float, max_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._idle_s = idle_s
        self._max_s = max_s
        self._clock = clock
        self._open: OrderedDict[str, Session] = OrderedDict()

    def open(self, user: str, role: Role) -> Session:
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32), user, role, secrets.token_urlsafe(32), now, now
        )
        self._open[session.token] = session
        while len(self._open) > MAX_SESSIONS:
            self._open.popitem(last=False)
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of a token (its idle time restarts), or None."""
        if not token:
            return None
        session = self._open.get(token)
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > self._idle_s or now - session.created > self._max_s:
            del self._open[token]
            return None
        session.seen = now
        self._open.move_to_end(token)
        return session

    def close(self, token: str) -> None:
        self._open.pop(token, None)


class LoginThrottle:
    """Failed logins per key (a user name, an address) within a sliding window."""

    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_failures
        self._window_s = window_s
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._refusal_noted: dict[str, float] = {}  # key → end of the lockout already noted

    def retry_after(self, keys: Iterable[str]) -> float:
        """Seconds before a login for these keys is checked again; 0 when it may be now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            failures = self._recent(key, now)
            if len(failures) >= self._max:
                wait = max(wait, failures[-self._max] + self._window_s - now)
        return wait

    def first_refusal(self, keys: Iterable[str], wait: float) -> bool:
        """Whether this refusal is the first of its lockout (`wait` seconds long): the one
        worth an audit row; the refusals after it would only let a client fill the audit."""
        now = self._clock()
        self._refusal_noted = {k: end for k, end in self._refusal_noted.items() if end > now}
        first = False
        for key in keys:
            if key not in self._refusal_noted:
                self._refusal_noted[key] = now + wait
                first = True
        return first

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        for key in keys:
            failures = self._recent(key, now)
            failures.append(now)
            self._failures[key] = failures
            self._failures.move_to_end(key)
        while len(self._failures) > MAX_THROTTLED_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self._window_s:
            failures.popleft()
        return failures


def throttle_keys(user: str, address: str) -> tuple[str, str]:
    return f"user:{user.lower()}", f"address:{address}"
