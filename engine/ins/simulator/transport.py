"""An httpx transport that hands requests to an in-process simulator.

The INSi client keeps its whole SOAP path (zeep encoding, HTTP headers, response parsing);
only the socket is replaced. This is the production path when `[insi] url` is absent.
"""

from __future__ import annotations

import httpx

from engine.ins.simulator.handler import InsiSimulator


class SimulatorTransport(httpx.AsyncBaseTransport):
    """Answers every request with `InsiSimulator.respond`; only POST /lps exists."""

    def __init__(self, simulator: InsiSimulator) -> None:
        self.simulator = simulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/lps":
            return httpx.Response(404, request=request)
        status, headers, body = await self.simulator.respond(await request.aread(), request.headers)
        return httpx.Response(status, headers=headers, content=body, request=request)
