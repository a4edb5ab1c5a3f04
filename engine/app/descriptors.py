"""File descriptors: the HTTP listener's share of them, and noticing when they run out.

Every connection holds a descriptor. The HTTP listener may hold at most what the open-file
limit (RLIMIT_NOFILE) leaves once `[http] reserved_fds` are set aside for the MLLP
listeners, deliveries and the store, so that a flood of HTTP connections cannot lock
senders out. Should descriptors run out all the same, the loop's accept fails with EMFILE
and nobody hears of it: uvloop (libuv) accepts and closes waiting connections at once,
asyncio retries every second. So `DescriptorWatch` opens one descriptor a second: when it
cannot, the first failure of an episode is logged, each is counted in a metric, and
`/readyz` says so.
"""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import time
from collections.abc import Callable

from engine.base.logs import get_logger
from engine.base.metrics import EngineMetrics
from engine.base.shortage import Shortage

EXHAUSTED = (errno.EMFILE, errno.ENFILE)
PROBE_EVERY_S = 1.0
QUIET_S = 3.0  # a probe a second: three without a failure end an episode
log = get_logger("engine.app.descriptors")


def open_descriptors() -> int:
    """Descriptors this process holds now (Linux)."""
    return len(os.listdir("/proc/self/fd"))


def http_connection_cap(max_connections: int, reserved_fds: int) -> tuple[int, int]:
    """(the HTTP connections this process can afford, its open-file limit): at most
    `max_connections`, and at most what the limit leaves once `reserved_fds` and the
    descriptors open now are set aside (which may be 0 or less: too few to serve)."""
    limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if limit == resource.RLIM_INFINITY:
        return max_connections, limit
    return min(max_connections, limit - reserved_fds - open_descriptors()), limit


def descriptor_free() -> str:
    """'' when this process can open one more descriptor now, else the error's code."""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as error:
        if error.errno in EXHAUSTED:
            return errno.errorcode[error.errno]
        raise
    return ""


class DescriptorWatch:
    """Probes for a free descriptor once a second; reports an episode without one."""

    def __init__(
        self,
        metrics: EngineMetrics,
        probe: Callable[[], str] = descriptor_free,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._probe = probe
        self._shortage = Shortage(QUIET_S, clock)

    @property
    def exhausted(self) -> bool:
        """A probe found no descriptor free within the last `QUIET_S` seconds."""
        return self._shortage.active

    def check(self) -> None:
        failure = self._probe()
        if not failure:
            return
        self._metrics.descriptors_exhausted(failure)
        if self._shortage.refused():
            log.error(
                "out of file descriptors",
                reason="new connections are refused or wait unaccepted; see the open-file "
                "limit (LimitNOFILE), the routes' max_connections and [http] reserved_fds",
                error=failure,
            )

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(PROBE_EVERY_S)
