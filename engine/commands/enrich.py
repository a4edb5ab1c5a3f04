"""`ins-engine enrich --config FILE PATH… --out DIR`: enrich message files offline.

A route's steps (its INS enrichment among them), without a listener or a store: each input
file gives an output file at the same relative path under DIR. The console shows counts per
outcome and the number of INSi calls; `--report FILE` writes the identity report for these messages.
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

from engine.base.logs import configure_logging
from engine.commands.common import (
    add_config_argument,
    add_report_options,
    print_counts,
    read_config,
    report_delimiter,
    report_outcomes,
)
from engine.config.settings import Config, RouteSettings
from engine.embed import RouteRunner
from engine.enrich.store import KIND
from engine.errors import CliError
from engine.tools.offline import (
    Targets,
    check_outputs,
    enrich,
    identity_records,
    output_targets,
    read_inputs,
    write_outputs,
)
from engine.tools.report import ReportFile, report_row


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
        "--route",
        metavar="NAME",
        help=f"route whose steps run (default: the first with an {KIND} step)",
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
    targets = output_targets(args.paths)
    check_outputs(targets, Path(args.out), args.force)
    return asyncio.run(_enrich_files(args, config, route, targets))


async def _enrich_files(
    args: argparse.Namespace, config: Config, route: RouteSettings, targets: list[Targets]
) -> int:
    out_dir = Path(args.out)
    async with await RouteRunner.open(config, route.name) as runner:
        files, problems = read_inputs(targets, runner)
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
            summary = await enrich(files, runner, config.insi.in_process or config.insi.simulator)
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
        print(f"{summary.failed} message(s) failed in a step and were written as read")
    if summary.left_out:
        print(f"{summary.left_out} message(s) dropped or refused by the route, not written")
    if report is not None:
        print(f"identity report: {report.counts.total()} row(s) written to {args.report}")
    return 1 if summary.failed else 0


def _route(config: Config, name: str | None) -> RouteSettings:
    """The route named, or the first that enriches."""
    routes = {route.name: route for route in config.routes}
    enriching = [r for r in config.routes if any(s.kind == KIND for s in r.step_list())]
    if name is None:
        if not enriching:
            raise CliError(f"no route has an {KIND} step: nothing to enrich")
        return enriching[0]
    route = routes.get(name)
    if route is None:
        raise CliError(f"--route {name}: no such route (routes: {', '.join(routes)})")
    if route not in enriching:
        raise CliError(f"route {route.name} has no {KIND} step: nothing to enrich")
    return route
