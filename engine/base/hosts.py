"""Whether a host is this machine: plain HTTP is allowed to a loopback address only, for the
HTTP listener's bind address as for the INSi URL."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str | None) -> bool:
    """True for `localhost` and loopback addresses: the only hosts plain http may reach."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
