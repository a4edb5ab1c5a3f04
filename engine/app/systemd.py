"""Telling systemd how the engine is doing: READY, STOPPING and watchdog pings.

A `Type=notify` unit waits for `READY=1` before it counts the service as started, so a
dependent unit (or an operator's `systemctl start`) returns only once every listener is
bound. With `WatchdogSec=`, systemd restarts the engine when the pings stop: they come from
a task on the engine's event loop, so a blocked loop stops them. The protocol is one
datagram per state on the unix socket named by `$NOTIFY_SOCKET` (an abstract socket when it
starts with `@`); outside systemd that variable is unset and every call does nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Mapping

from engine.base.logs import get_logger

log = get_logger("engine.app.systemd")
# What a service manager (or a terminal) sends to stop the engine; each is a clean stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What asks it to reload its configuration (`systemctl reload`, `ins-engine reload`).
RELOAD_SIGNAL = signal.SIGHUP


class Notifier:
    """Sends states to systemd's notify socket, if the environment names one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *states: str) -> bool:
        """Send `STATE=value` lines in one datagram; False when not under systemd or the
        socket is gone (a missing supervisor must never stop the engine)."""
        if self._address is None:
            return False
        payload = "\n".join(states).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as error:
            log.warning("systemd notification failed", error=type(error).__name__)
            return False
        return True

    async def watchdog(self) -> None:
        """Ping at half the watchdog interval until cancelled (nothing without a watchdog)."""
        if self.watchdog_s is None or not self.enabled:
            return
        period = self.watchdog_s / 2
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(period)


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # Linux abstract namespace
    if value.startswith("/"):
        return value
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """`WATCHDOG_USEC` in seconds, when it is meant for this process (`WATCHDOG_PID`)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000
