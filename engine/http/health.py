"""`/healthz` and `/readyz`, unauthenticated, for load balancers, systemd and Kubernetes.

`/healthz` answers as long as the event loop runs. `/readyz` answers 200 only when the store
takes a write within the store timeout, every route's listener is bound, delivery runs (the
delivery process, when the engine has one) and no accept failed for want of a file
descriptor in the last seconds, 503 otherwise; its JSON body says which check failed (for
the store, why: its file deleted, replaced or read-only, not answering, or failed) and
reports, each under its name, what the steps share shows of itself (`engine.steps.panel`:
INSi's mode, breaker, last error and certificate), which does not decide readiness: without
INSi, messages still flow, without an INS.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from engine.base.logs import get_logger
from engine.errors import StoreFileFault
from engine.http.view import engine_of

log = get_logger("engine.http")
WRITABLE = "writable"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    engine = engine_of(request)
    store = await _store_state(engine.store.check_writable, engine.config.engine.store_timeout_s)
    store_ok = store == WRITABLE
    listeners = {name: listener.bound for name, listener in engine.listeners.items()}
    delivering = engine.delivering()
    exhausted = engine.descriptors_exhausted()
    ready = store_ok and all(listeners.values()) and delivering and not exhausted
    body: dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "store": store,
        "listeners": {name: "bound" if bound else "down" for name, bound in listeners.items()},
        "delivery": "running" if delivering else "down",
        "descriptors": "exhausted" if exhausted else "available",
    }
    for name, panel in engine.panels().items():
        body[name] = panel.health()
    return web.json_response(body, status=200 if ready else 503)


async def _store_state(check: Any, timeout_s: float) -> str:
    """`writable`, or why not: what a message would meet (its AE) at this moment."""
    try:
        async with asyncio.timeout(timeout_s):
            await check()
    except StoreFileFault as fault:  # the engine's own text: no patient data
        return str(fault)
    except TimeoutError:
        return f"not answering within {timeout_s:g} s"
    except Exception as error:  # any failure means not ready; the log says which kind
        log.warning("readiness: store write failed", error=type(error).__name__)
        return "failed"
    return WRITABLE


def register(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
