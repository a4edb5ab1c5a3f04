"""`/healthz` and `/readyz`, unauthenticated, for load balancers, systemd and Kubernetes.

`/healthz` answers as long as the event loop runs. `/readyz` answers 200 only when the store
takes a write within the store timeout, every route's listener is bound, delivery runs (the
delivery process, when the engine has one) and no accept failed for want of a file
descriptor in the last seconds, 503 otherwise; its JSON body says which check failed (for
the store, why: its file deleted, replaced or read-only, not answering, or failed) and
reports INSi (simulated, circuit breaker, last error, certificate expiry), which does not
decide readiness: without INSi, messages still flow, without an INS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from aiohttp import web

from engine.base.logs import get_logger
from engine.errors import StoreFileFault
from engine.http.view import engine_of
from engine.ins.expiry import days_left, expires_soon
from engine.ins.service import InsiService

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
    if engine.insi is not None:
        body["insi"] = insi_report(engine.insi, time.time())
    return web.json_response(body, status=200 if ready else 503)


def insi_report(insi: InsiService, now: float) -> dict[str, Any]:
    """INSi as `/readyz` shows it (codes, the engine's own error texts, times)."""
    health = insi.health.health
    report: dict[str, Any] = {
        "simulated": health.simulated,
        "breaker": health.breaker,
        "last_error": health.last_error,
        "last_error_at": _iso(health.last_error_at),
    }
    if insi.certificate_expires_at is not None:
        expires_at = insi.certificate_expires_at
        report["certificate"] = {
            "expires_at": _iso(expires_at),
            "days_left": int(days_left(expires_at, now)),
            "warning": expires_soon(expires_at, now),
        }
    return report


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


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def register(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
