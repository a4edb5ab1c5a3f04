"""`ins-engine report identities --out FILE`: the identity-vigilance report, from the store.

Lists the messages whose identity needs a person (INSi found none or several, the identity
contradicts INSi, or an INS was récupérée and awaits a document check), with the local
identifier and the traits used, into a file only its owner can read. The console shows
counts per outcome only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import time
from pathlib import Path

from engine.commands.common import (
    add_config_argument,
    add_report_options,
    print_counts,
    read_config,
    report_delimiter,
    report_outcomes,
)
from engine.config import sqlite_path
from engine.errors import CliError
from engine.logs import configure_logging
from engine.report import ReportFile, write_store_report
from engine.steps.registry import registry
from engine.store.sqlite import SqliteStore

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
    store_path = sqlite_path(config.engine.store)
    assert store_path is not None  # the config loader checks the URL
    if not Path(store_path).is_file():
        raise CliError(f"no store at {store_path} (the engine of {config.source} creates it)")
    report = asyncio.run(_write(store_path, since, args))
    print(f"identity report: {report.counts.total()} row(s) written to {args.out} ({args.format})")
    print_counts(report.counts)
    if report.simulated:
        print(f"{report.simulated} row(s) come from the SIMULATED INSi, not the national service")
    return 0


async def _write(store_path: str, since: float, args: argparse.Namespace) -> ReportFile:
    store = await SqliteStore.open(store_path, registry().store_extensions())
    try:
        with ReportFile(Path(args.out), args.format, args.force, report_delimiter(args)) as report:
            await write_store_report(store, report, since, report_outcomes(args))
    finally:
        await store.close()
    return report
