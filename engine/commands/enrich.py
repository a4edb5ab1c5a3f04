"""`ins-engine enrich --config FILE PATH… --out DIR`: enrich message files offline.

The route's enrichment step, without a listener or a store: each input file gives an output
file at the same relative path under DIR. The console shows counts per outcome and the
number of INSi calls; `--report FILE` writes the identity report for these messages.
Exit status 0 when every message was processed (not found, several found… are outcomes,
not failures), 1 when a file could not be read or a message failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
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
from engine.config import Config, RouteSettings
from engine.errors import CliError
from engine.logs import configure_logging
from engine.offline import (
    check_outputs,
    enrich,
    identity_records,
    output_targets,
    read_inputs,
    write_outputs,
)
from engine.report import ReportFile, report_row


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "enrich",
        help="enrich HL7 message files offline (no listener, no store)",
        description=__doc__.split("\n\n")[0],
    )
    add_config_argument(parser)
    parser.add_argument("paths", nargs="+", metavar="PATH", help="message files or folders")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the output files")
    parser.add_argument(
        "--route", metavar="NAME", help="route whose enrichment settings apply (default: first)"
    )
    parser.add_argument(
        "--report", metavar="FILE", help="also write the identity report (patient data: 0600)"
    )
    add_report_options(parser)
    parser.add_argument("--log-level", default="warning", help="log level (default warning)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)  # on stderr: stdout holds the summary
    config = read_config(args)
    route = _route(config, args.route)
    out_dir = Path(args.out)
    targets = output_targets(args.paths)
    check_outputs(targets, out_dir, args.force)
    files, problems = read_inputs(targets, route)
    if problems:
        for problem in problems:
            print(f"{problem.path}: {problem.reason}", file=sys.stderr)
        print(f"ins-engine enrich: {len(problems)} file(s) unreadable, nothing written")
        return 1
    with contextlib.ExitStack() as stack:  # a failed run removes its partial report
        report = (
            stack.enter_context(
                ReportFile(Path(args.report), args.format, args.force, report_delimiter(args))
            )
            if args.report
            else None
        )
        read_at = time.time()
        summary = asyncio.run(enrich(files, route, config.insi))
        write_outputs(files, out_dir, args.force)
        if report is not None:
            records = identity_records(files, read_at, report_outcomes(args))
            report.write(report_row(record) for record in records)
    insi = "SIMULATED INSi (not the national service)" if summary.simulated else "INSi"
    print(
        f"enrich: {summary.messages} message(s) in {summary.files} file(s) written to "
        f"{out_dir} (route {route.name})"
    )
    print_counts(summary.outcomes)
    print(f"{insi}: {summary.calls} call(s)")
    if summary.failed:
        print(f"{summary.failed} message(s) failed in the step and were written as read")
    if report is not None:
        print(f"identity report: {report.counts.total()} row(s) written to {args.report}")
    return 1 if summary.failed else 0


def _route(config: Config, name: str | None) -> RouteSettings:
    routes = {route.name: route for route in config.routes}
    route = config.routes[0] if name is None else routes.get(name)
    if route is None:
        raise CliError(f"--route {name}: no such route (routes: {', '.join(routes)})")
    if not route.enrich:
        raise CliError(f"route {route.name} has enrich = false: nothing to do")
    return route
