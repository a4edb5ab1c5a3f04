"""`ins-engine report identities --out FILE`: the identity-vigilance report, from the store;
`ins-engine report engines`: the engines sharing the store and the leases they hold.

The identity report lists the messages whose identity needs a person (INSi found none or
several, the identity contradicts INSi, or an INS was récupérée and awaits a document
check), with the local identifier and the traits used, into a file only its owner can read.
The console shows counts per outcome only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from dataclasses import asdict
from pathlib import Path

from engine.base.logs import configure_logging
from engine.commands.common import (
    add_config_argument,
    add_report_options,
    on_store,
    print_counts,
    read_config,
    report_delimiter,
    report_outcomes,
)
from engine.commands.queue_views import print_engines
from engine.errors import CliError
from engine.store.backends import OpenStore
from engine.store.base import EngineState, LeaseState
from engine.tools.report import ReportFile, write_store_report

_DURATION = re.compile(r"([0-9]+)([dh])")
_SECONDS = {"d": 86400, "h": 3600}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="reports for people (identity vigilance)")
    reports = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    identities = reports.add_parser(
        "identities",
        help="identities needing action, with the traits used (patient data: a 0600 file)",
        description=__doc__.split("\n\n")[0],
    )
    add_config_argument(identities)
    identities.add_argument(
        "--since",
        metavar="WHEN",
        help="messages received since a date (2024-01-31), a local date and time "
        "(2024-01-31T08:00) or a duration back from now (7d, 12h); default: all kept",
    )
    identities.add_argument("--out", required=True, metavar="FILE", help="the report file")
    add_report_options(identities)
    identities.set_defaults(handler=identities_report)

    engines = reports.add_parser(
        "engines",
        help="every engine on the store and every lease: who routes, who delivers what",
    )
    add_config_argument(engines)
    engines.add_argument("--json", action="store_true", help="print JSON")
    engines.set_defaults(handler=engines_report)


def parse_since(text: str, now: float) -> float:
    """`--since` as epoch seconds; a date or time without an offset is local time."""
    duration = _DURATION.fullmatch(text.strip())
    if duration is not None:
        return now - int(duration[1]) * _SECONDS[duration[2]]
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"--since {text!r}: expected a date (2024-01-31), a date and time "
            "(2024-01-31T08:00) or a duration (7d, 12h)"
        ) from None
    return moment.astimezone().timestamp() if moment.tzinfo is None else moment.timestamp()


def identities_report(args: argparse.Namespace) -> int:
    configure_logging("warning")  # on stderr; the report file is the only output with data
    config = read_config(args)
    since = parse_since(args.since, time.time()) if args.since else 0.0
    delimiter = report_delimiter(args)

    async def write(store: OpenStore) -> ReportFile:
        with ReportFile(Path(args.out), args.format, args.force, delimiter) as report:
            await write_store_report(store, report, since, report_outcomes(args))
        return report

    report = on_store(config, write)
    print(f"identity report: {report.counts.total()} row(s) written to {args.out} ({args.format})")
    print_counts(report.counts)
    if report.simulated:
        print(f"{report.simulated} row(s) come from the SIMULATED INSi, not the national service")
    return 0


def engines_report(args: argparse.Namespace) -> int:
    async def read(store: OpenStore) -> tuple[list[EngineState], list[LeaseState]]:
        return await store.engines(), await store.leases()

    engines, leases = on_store(read_config(args), read)
    if args.json:
        print(
            json.dumps(
                {
                    "engines": [asdict(engine) for engine in engines],
                    "leases": [asdict(lease) for lease in leases],
                },
                indent=2,
            )
        )
        return 0
    print_engines(engines, leases, time.time())
    return 0
