"""`ins-engine replay PATH… --to HOST:PORT`: send message files over MLLP, check each ACK.

For testing a receiver with a corpus or resending an export: files are read and checked in
full first, then sent; the summary says what the receiver answered, without patient data.
Exit status 0 only if every file was read and every message got AA or CA.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress

from engine.base.logs import configure_logging
from engine.config.settings import ClientTls
from engine.config.tls import client_context
from engine.errors import CliError
from engine.tools.replay.files import expand_paths, load_files
from engine.tools.replay.sender import Result, Target, send_files
from engine.tools.replay.summary import Summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="send HL7 message files over MLLP and check each ACK",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="message files or folders")
    target = parser.add_mutually_exclusive_group(required=True)  # usage: (--to | --dry-run)
    target.add_argument("--to", metavar="HOST:PORT", help="the MLLP receiver")
    target.add_argument("--dry-run", action="store_true", help="read and check only")
    parser.add_argument("--connections", type=int, default=1, metavar="N")
    parser.add_argument("--rate", type=float, metavar="R", help="messages per second, overall")
    parser.add_argument("--ack-timeout", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="for the connection, then again for the TLS handshake (default 10)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--ca", metavar="FILE", help="CA bundle to verify the receiver")
    parser.add_argument("--cert", metavar="FILE", help="client certificate (PEM)")
    parser.add_argument("--key", metavar="FILE", help="client private key (PEM)")
    parser.add_argument("--log-level", default="warning", help="log level (default warning)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)  # on stderr: stdout holds the summary
    target = None if args.dry_run else _target(args)
    if args.connections < 1:
        raise CliError("--connections must be at least 1")
    if args.rate is not None and args.rate <= 0:
        raise CliError("--rate must be a positive number of messages per second")
    if args.ack_timeout <= 0:
        raise CliError("--ack-timeout must be a positive number of seconds")
    if args.connect_timeout <= 0:
        raise CliError("--connect-timeout must be a positive number of seconds")
    files, problems = load_files(expand_paths(args.paths))
    summary = Summary(files, problems, dry_run=args.dry_run)
    if target is not None and files:
        with _progress(summary.message_count) as advance:

            def on_result(result: Result) -> None:
                summary.record(result)
                advance()

            asyncio.run(
                send_files(
                    files,
                    target,
                    on_result,
                    connections=args.connections,
                    rate=args.rate,
                    ack_timeout_s=args.ack_timeout,
                )
            )
    summary.finish()
    if args.json:
        print(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        summary.render(Console())
    return 0 if summary.succeeded else 1


def _target(args: argparse.Namespace) -> Target:
    host, _, port = args.to.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--to {args.to!r}: expected HOST:PORT, e.g. localhost:2575")
    return Target(host, int(port), _ssl_context(args), args.connect_timeout)


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls:
        if args.ca or args.cert or args.key:
            raise CliError("--ca, --cert and --key need --tls")
        return None
    settings = ClientTls(ca=args.ca, cert=args.cert, key=args.key)
    for option, expected in settings.problems():
        raise CliError(f"--{option}: {expected}")
    try:
        return client_context(settings)
    except (OSError, ssl.SSLError) as error:
        raise CliError(f"TLS files: cannot load ({type(error).__name__}: {error})") from None


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; otherwise a no-op."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda: None
        return
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("replay", total=total)
        yield lambda: progress.advance(task)
