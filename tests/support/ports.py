"""A free port on loopback for a server a test starts later (PostgreSQL, an engine process).

The port is free when it is picked, not when the server binds it: another process may take
it between the two. Under pytest-xdist each worker picks only ports of its own residue, so
two workers never pick the same one. The residue is that of port // 2: Linux hands out odd
ports to bind(0), leaving the even ones to connect().
"""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    """A port nothing listens on now, among this worker's."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    for _ in range(1000):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if (port // 2) % workers == index % workers:
            return port
    raise RuntimeError(f"no free port of worker {index}'s residue in 1,000 tries")
