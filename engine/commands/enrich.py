"""`ins-engine enrich --config FILE PATH… --out DIR`: enrich message files offline.

A route's steps (its INS enrichment among them), without a listener or a store: each input
file gives an output file at the same relative path under DIR. The console shows counts per
outcome and the number of INSi calls; `--report FILE` writes the identity report for these messages.
With `--to-fhir [DESTINATION]` each output is `<name>.ndjson` instead: the Patient resources
the route's fhir destination would write for the messages it receives (`engine.tools.bulk`).
A route without an enrichment step is then accepted: the mapping and the outbound INS guard
are what decide which INS a resource carries.
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
from engine.config.settings import Config, DestinationSettings, RouteSettings
from engine.delivery.kind import DryRun, kind_of
from engine.embed import RouteRunner
from engine.enrich.store import KIND
from engine.errors import CliError
from engine.fhir.kind import FHIR
from engine.tools.bulk import Written, write_resources
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

NDJSON = ".ndjson"  # the suffix of --to-fhir's outputs


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
        "--to-fhir",
        nargs="?",
        const="",
        metavar="DESTINATION",
        help="write <name>.ndjson files of the Patient resources the route's fhir destination "
        "(the one named, or its only one) would write; after the paths, or --to-fhir=NAME",
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
    if args.to_fhir is None:
        route, destination = _route(config, args.route), None
    else:
        route, destination = _fhir_destination(config, args.route, args.to_fhir)
    targets = output_targets(args.paths, None if destination is None else NDJSON)
    check_outputs(targets, Path(args.out), args.force)
    return asyncio.run(_enrich_files(args, config, route, destination, targets))


async def _enrich_files(
    args: argparse.Namespace,
    config: Config,
    route: RouteSettings,
    destination: DestinationSettings | None,
    targets: list[Targets],
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
            if destination is None:
                write_outputs(files, out_dir, args.force)
            else:
                written = await write_resources(
                    files, destination.name, _dry_run(route, destination), out_dir, args.force
                )
            if report is not None:
                records = identity_records(files, read_at, report_outcomes(args))
                report.write(report_row(record) for record in records)
    insi = "SIMULATED INSi (not the national service)" if summary.simulated else "INSi"
    what = "" if destination is None else f", destination {destination.name}, NDJSON"
    print(
        f"enrich: {summary.messages} message(s) in {summary.files} file(s) written to "
        f"{out_dir} (route {route.name}{what})"
    )
    print_counts(summary.outcomes)
    if destination is not None:
        _print_written(written, destination.name)
    print(f"{insi}: {summary.calls} call(s)")
    if summary.failed:
        print(f"{summary.failed} message(s) failed in a step and were written as read")
    if summary.left_out:
        print(f"{summary.left_out} message(s) dropped or refused by the route, not written")
    if report is not None:
        print(f"identity report: {report.counts.total()} row(s) written to {args.report}")
    parked = destination is not None and bool(written.not_written)
    return 1 if summary.failed or parked else 0


def _print_written(written: Written, name: str) -> None:
    """The NDJSON files' counts; on stderr, each message the destination would park."""
    for problem in written.not_written:
        print(f"{problem}", file=sys.stderr)
    print(f"{name}: {written.taken} message(s) taken, {written.resources} resource(s) written")
    if written.removals:
        print(f"{written.removals} removal(s) not in the files (NDJSON holds resources only)")
    if written.not_written:
        print(f"{len(written.not_written)} message(s) the destination would park, not written")


def _fhir_destination(
    config: Config, route_name: str | None, name: str
) -> tuple[RouteSettings, DestinationSettings]:
    """The route (`--route`, else the first with such a destination) and its fhir
    destination named `name`, or its only one when `name` is empty."""
    routes = [route for route in config.routes if route_name in (None, route.name)]
    if not routes:
        names = ", ".join(route.name for route in config.routes)
        raise CliError(f"--route {route_name}: no such route (routes: {names})")
    for route in routes:
        fhir = [d for d in route.destinations if _kind_name(d) == FHIR.name]
        chosen = [d for d in fhir if name in ("", d.name)]
        if len(chosen) > 1:
            names = ", ".join(d.name for d in chosen)
            raise CliError(
                f"--to-fhir: route {route.name} has several fhir destinations ({names}): "
                "name one, --to-fhir=NAME"
            )
        if chosen:
            return route, chosen[0]
    wanted = f"fhir destination {name}" if name else "fhir destination"
    found = f"route {route_name} has no {wanted}" if route_name else f"no route has a {wanted}"
    if name and Path(name).exists():
        found += f" ({name} is a path: put --to-fhir after the paths, or write --to-fhir=NAME)"
    raise CliError(f"--to-fhir: {found}")


def _kind_name(destination: DestinationSettings) -> str | None:
    kind = kind_of(destination)
    return None if kind is None else kind.name


def _dry_run(route: RouteSettings, destination: DestinationSettings) -> DryRun:
    kind = kind_of(destination)
    assert kind is not None and kind.preview is not None  # a fhir destination previews
    return kind.preview(route, destination)


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
