"""Bearer tokens for machine clients (`/metrics`, the enrichment API).

A token lives in an environment variable named by the configuration (a systemd
`EnvironmentFile`, a container secret), never in the configuration file, and is compared
in constant time.
"""

from __future__ import annotations

import hmac
import os

from aiohttp import web


def configured_token(variable: str | None) -> str | None:
    """The token in `variable`, or None when the variable is unset or empty."""
    if variable is None:
        return None
    return os.environ.get(variable) or None


def bearer_matches(request: web.Request, token: str | None) -> bool:
    """True when the request carries `Authorization: Bearer <token>`; never without a token."""
    if token is None:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
