"""The HTTP application: health and metrics, then the parts the configuration turns on."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from engine.http import health, prometheus
from engine.http.connections import bounded_requests
from engine.http.server import json_errors, logged_errors, secure_headers
from engine.http.view import ENGINE, EngineView

MAX_BODY_BYTES = 4 * 1024 * 1024  # an ER7 message posted to the API, with room to spare
API_PREFIX = "/api/"  # the enrichment API's errors are JSON, aiohttp's own included


def build_app(view: EngineView, *parts: Callable[[web.Application], None]) -> web.Application:
    app = web.Application(
        middlewares=[
            secure_headers(view.http.tls is not None),
            logged_errors,
            json_errors(API_PREFIX),
            bounded_requests,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[ENGINE] = view
    health.register(app)
    prometheus.register(app)
    for register in parts:
        register(app)
    return app
