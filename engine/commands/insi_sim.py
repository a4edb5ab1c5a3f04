"""`ins-engine insi-sim`: run the local INSi simulator over HTTP or HTTPS (mutual TLS).

For tests, demos and load benchmarks; it answers on loopback by default and every answer is
marked simulated (logs and the `X-INSi-Simulated` HTTP header).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl

from engine.base.hosts import is_loopback_host
from engine.base.logs import configure_logging, get_logger
from engine.config.settings import parse_address
from engine.errors import CliError, EngineError
from engine.ins.simulator.handler import InsiSimulator
from engine.ins.simulator.population import population
from engine.ins.simulator.server import server_ssl_context, start_server

DEFAULT_LISTEN = "127.0.0.1:8089"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "insi-sim", help="run a local INSi simulator (SOAP 1.2, POST /lps)"
    )
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN}; port 0 = any)",
    )
    parser.add_argument(
        "--persons",
        metavar="FILE",
        help="JSON persons file (default: the public INSi test persons)",
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="add N synthetic persons with valid keys (load tests)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="seed of the synthetic persons and of fault injection",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        metavar="N",
        help="latency added to each answer, milliseconds",
    )
    parser.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="X",
        help="share of calls answered with a siram_40 fault (0 to 1)",
    )
    parser.add_argument(
        "--idam-allow",
        action="append",
        metavar="IDAM",
        help="accept only this IDAM (repeatable; default: any non-empty)",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="server certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert (PEM)")
    parser.add_argument(
        "--client-ca",
        metavar="FILE",
        help="require client certificates signed by this CA; CN must be "
        "INSI-AUTO or INSI-MANU (DESIR_560 otherwise)",
    )
    parser.add_argument("--log-level", default="info", help="log level (default info)")
    parser.set_defaults(handler=insi_sim)


def insi_sim(args: argparse.Namespace) -> int:
    """Check the options, start the server, serve until SIGINT/SIGTERM."""
    address = parse_address(args.listen)
    if address is None:
        raise CliError("--listen: HOST:PORT, e.g. 127.0.0.1:8089")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        raise CliError("--client-ca needs --tls-cert and --tls-key")
    if not 0 <= args.fault_rate <= 1:
        raise CliError("--fault-rate: a share from 0 to 1")
    if args.latency_ms < 0 or args.synthetic < 0:
        raise CliError("--latency-ms and --synthetic: numbers >= 0")
    configure_logging(args.log_level)
    try:
        persons = population(args.persons, args.synthetic, args.seed)
        context = (
            server_ssl_context(args.tls_cert, args.tls_key, args.client_ca)
            if args.tls_cert
            else None
        )
    except EngineError as error:
        raise CliError(str(error)) from None
    except (OSError, ssl.SSLError) as error:
        raise CliError(f"TLS files: {error.strerror or type(error).__name__}") from None
    simulator = InsiSimulator(
        persons,
        idam_allow_list=args.idam_allow,
        latency_s=args.latency_ms / 1000,
        fault_rate=args.fault_rate,
        seed=args.seed,
    )
    try:
        asyncio.run(_serve(simulator, *address, context))
    except OSError as error:
        raise CliError(f"cannot listen on {args.listen}: {error.strerror or error}") from None
    return 0


async def _serve(
    simulator: InsiSimulator, host: str, port: int, context: ssl.SSLContext | None
) -> None:
    log = get_logger("ins.insi.simulator")
    server = await start_server(simulator, host, port, context)
    if not is_loopback_host(host):
        log.warning("INSi simulator listening beyond loopback", listen=f"{host}:{server.port}")
    log.warning(
        "INSi SIMULATOR ready: answers are simulated, not the national service",
        url=server.url,
        listen=f"{host}:{server.port}",
        tls=server.tls,
        count=len(simulator.index),
        simulated=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.aclose()
        log.info("INSi simulator stopped", count=simulator.requests, simulated=True)
