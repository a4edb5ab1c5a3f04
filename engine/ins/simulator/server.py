"""The simulator over HTTP(S): an aiohttp server answering `POST /lps`.

With a client CA, TLS requires a client certificate and the handler checks its CN, as the
national service does (`DESIR_560` for anything but INSI-AUTO / INSI-MANU).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aiohttp import web

from engine.ins.simulator.handler import InsiSimulator


def server_ssl_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """TLS for the simulator; with `client_ca`, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def build_app(simulator: InsiSimulator, check_client_cn: bool = False) -> web.Application:
    """The aiohttp application; `check_client_cn` when TLS verifies client certificates."""

    async def lps(request: web.Request) -> web.Response:
        client_cn = _client_cn(request) if check_client_cn else None
        status, headers, body = await simulator.respond(
            await request.read(), request.headers, client_cn
        )
        return web.Response(status=status, headers=headers, body=body)

    app = web.Application(client_max_size=256 * 1024)
    app.router.add_post("/lps", lps)
    return app


@dataclass
class RunningSimulator:
    """A started server: its bound address and how to stop it."""

    runner: web.AppRunner
    host: str
    port: int
    tls: bool

    @property
    def url(self) -> str:
        """The endpoint to put in `[insi] url`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/lps"

    async def aclose(self) -> None:
        """Stop listening and close open connections."""
        await self.runner.cleanup()


async def start_server(
    simulator: InsiSimulator,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> RunningSimulator:
    """Listen on host:port (port 0 = any free port) and return the bound address."""
    check_cn = ssl_context is not None and ssl_context.verify_mode == ssl.CERT_REQUIRED
    # In-flight answers get a second to finish at shutdown (injected latency included).
    runner = web.AppRunner(build_app(simulator, check_cn), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound_port = runner.addresses[0][1]
    return RunningSimulator(runner, host, bound_port, ssl_context is not None)


def _client_cn(request: web.Request) -> str:
    """CN of the verified client certificate ("" when there is none)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    peer = ssl_object.getpeercert() if ssl_object else None
    for rdn in (peer or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return ""
