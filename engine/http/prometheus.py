"""`/metrics`: the engine's registry in Prometheus text format.

Open by default (it holds no patient data); with `[http] metrics_token_env`, it asks for
`Authorization: Bearer <token>`. Gauges that mirror state (queue depths, the INSi breaker)
are refreshed from the store and from what the steps share (`Panel.refresh_metrics`) at
each scrape.
"""

from __future__ import annotations

import time

from aiohttp import web

from engine.base.metrics import CONTENT_TYPE
from engine.http.tokens import bearer_matches, configured_token
from engine.http.view import EngineView, engine_of


async def metrics(request: web.Request) -> web.Response:
    engine = engine_of(request)
    token = configured_token(engine.http.metrics_token_env)
    if engine.http.metrics_token_env is not None and not bearer_matches(request, token):
        raise web.HTTPUnauthorized(
            text="bearer token required", headers={"WWW-Authenticate": "Bearer"}
        )
    await refresh_gauges(engine)
    return web.Response(body=engine.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


async def refresh_gauges(engine: EngineView) -> None:
    now = time.time()
    queues = await engine.store.queue_status()
    engine.metrics.queue_depths(
        (
            (
                queue.route,
                queue.destination,
                queue.pending,
                queue.parked,
                now - queue.oldest_pending_at if queue.oldest_pending_at else 0.0,
            )
            for queue in queues
        ),
        engine.destinations(),
    )
    for panel in engine.panels().values():
        panel.refresh_metrics()


def register(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
