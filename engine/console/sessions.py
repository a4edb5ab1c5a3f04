"""Console sessions, kept in memory.

A session is a random token in a cookie (HttpOnly, SameSite=Strict, Secure over TLS) with
its own CSRF token; it ends after `session_idle_s` without a request, `session_max_s` after
login, at logout, or when the engine restarts (everyone logs in again).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engine.console.users import Role

MAX_SESSIONS = 10_000


@dataclass
class Session:
    token: str
    user: str
    role: Role
    csrf: str
    created: float
    seen: float
    notice: str = ""  # what the last action did, shown once on the next page
    single_sign_on: bool = False  # its role came from the identity provider, not the users file

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

    def open(self, user: str, role: Role, single_sign_on: bool = False) -> Session:
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32),
            user,
            role,
            secrets.token_urlsafe(32),
            now,
            now,
            single_sign_on=single_sign_on,
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
