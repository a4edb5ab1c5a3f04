"""What the console's pages share: sessions, the login brake, the users file, the audit."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from engine.config.settings import HttpSettings
from engine.console.brake import LoginBrake
from engine.console.oidc import OidcClient, PendingSignIns
from engine.console.render import SESSION
from engine.console.sessions import Sessions
from engine.console.users import UsersFile
from engine.http.view import engine_of
from engine.store.base import AuditEntry
from engine.store.roles import LoginBrake as BrakeStore


@dataclass
class Console:
    sessions: Sessions
    brake: LoginBrake
    users: UsersFile
    secure_cookies: bool
    trusted_proxies: frozenset[str] = frozenset()
    oidc: OidcClient | None = None  # single sign-on, when configured
    sign_ins: PendingSignIns = field(default_factory=PendingSignIns)

    @classmethod
    def from_settings(cls, settings: HttpSettings, store: BrakeStore) -> Console:
        secure = (
            settings.tls is not None if settings.secure_cookies is None else settings.secure_cookies
        )
        oidc = None
        if settings.oidc is not None:
            secret = os.environ.get(settings.oidc.client_secret_env, "")
            oidc = OidcClient(settings.oidc, secret)
        return cls(
            Sessions(settings.session_idle_s, settings.session_max_s),
            LoginBrake(store, settings.login_max_failures, settings.login_lockout_s),
            UsersFile(Path(settings.users) if settings.users else None),
            secure,
            frozenset(settings.trusted_proxies),
            oidc,
        )


CONSOLE = web.AppKey("console", Console)


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def client_address(request: web.Request) -> str:
    """Who is asking: the peer, or behind a trusted reverse proxy the address that proxy
    appended last to X-Forwarded-For (earlier entries are the client's to write)."""
    peer = request.remote or "?"
    if peer in console_of(request).trusted_proxies:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded[:64]
    return peer


async def audit(
    request: web.Request, action: str, target: str = "", detail: str = "", user: str = ""
) -> None:
    """Keep who did or saw what (synced before the page answers)."""
    session = request.get(SESSION)
    who = user or (session.user if session else "")
    await engine_of(request).store.record_audit(
        AuditEntry(time.time(), who, action, target, detail)
    )
