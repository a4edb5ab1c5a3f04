"""`ins-engine test [--config FILE] [CASE…]`: run the route tests beside the configuration.

Every case under `tests/<route>/<case>/` next to the configuration file (or those whose
`route/case` matches a CASE pattern) runs offline on the INSi simulator with a fixed clock.
Exit status 0 when every case passes, 1 when one fails (each failure names the case, the
destination and the field) or none was found, 2 for a configuration that does not load.
"""

from __future__ import annotations

import argparse
import asyncio

from engine.base.logs import configure_logging
from engine.commands.common import add_config_argument, read_config
from engine.config.settings import Config
from engine.tools.route_tests import Case, CaseResult, find_cases, run_case, tests_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "test", help="run the route tests beside the configuration", description=__doc__
    )
    add_config_argument(parser)
    parser.add_argument(
        "cases", nargs="*", metavar="CASE", help="route/case patterns (* wildcards)"
    )
    parser.add_argument("--log-level", default="error", help="log level (default error)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)  # on stderr: stdout holds the results
    config = read_config(args)
    cases = find_cases(config, args.cases)
    if not cases:
        print(f"no route test found under {tests_folder(config)}: nothing was tested")
        return 1
    results = asyncio.run(_run(config, cases))
    for result in results:
        shown = f"  ({result.description})" if result.description else ""
        print(f"{'FAIL' if result.failures else 'ok  '} {result.case.label}{shown}")
        for failure in result.failures:
            print(f"       {failure}")
    failed = sum(bool(result.failures) for result in results)
    print(f"{len(results)} case(s): {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


async def _run(config: Config, cases: list[Case]) -> list[CaseResult]:
    return [await run_case(config, case) for case in cases]
