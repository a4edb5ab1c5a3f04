"""Arguments and set-up shared by the commands that read a configuration file or write
an identity report."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from engine.app.preflight import preflight
from engine.config.settings import DEFAULT_CONFIG, Config, load_config
from engine.enrich.outcome import NEEDS_ACTION
from engine.errors import CliError, ConfigErrors, StoreError
from engine.steps.registry import registry
from engine.store.backends import OpenStore, existing_store, password
from engine.tools.report import FORMATS
from engine.tools.spreadsheet import DELIMITERS

T = TypeVar("T")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"configuration file (default: {DEFAULT_CONFIG})",
    )


def read_config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def on_store(config: Config, action: Callable[[OpenStore], Awaitable[T]]) -> T:
    """Open the configuration's store (an engine has created it), act, close. Commands
    work beside running engines; a store that cannot be opened is a CLI error naming it."""
    settings = config.engine

    async def main() -> T:
        store = await existing_store(
            settings.store, password(settings.store_password_env), registry().store_extensions()
        )
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except StoreError as error:
        raise CliError(str(error)) from None


def read_config_for_start(args: argparse.Namespace) -> Config:
    """The configuration, and every start-up problem this machine has with it (missing
    certificates, folders the engine cannot write...), raised together."""
    config = load_config(args.config)
    problems = preflight(config)
    if problems:
        raise ConfigErrors(problems)
    return config


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """--format, --all and --force: how an identity report is written."""
    parser.add_argument("--format", choices=FORMATS, default="csv", help="default csv")
    parser.add_argument(
        "--delimiter",
        metavar="CHAR",
        help="CSV delimiter: ',' (default), ';' for French spreadsheets, or a tab",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every outcome, not only those needing a person (01, 02, incoherent, récupérée, "
        "not qualifiable, INSi unavailable or invalid answer)",
    )
    parser.add_argument("--force", action="store_true", help="replace existing files")


def report_delimiter(args: argparse.Namespace) -> str:
    """The CSV delimiter asked for, checked against the format."""
    if args.delimiter is None:
        return ","
    if args.format != "csv":
        raise CliError("--delimiter applies to --format csv only")
    delimiter = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    if delimiter not in DELIMITERS:
        raise CliError("--delimiter: ',' or ';' or a tab ('\\t')")
    return delimiter


def report_outcomes(args: argparse.Namespace) -> frozenset[str] | None:
    """The outcomes a report lists: None for all of them."""
    return None if args.all else NEEDS_ACTION


def print_counts(counts: Counter[str]) -> None:
    """Counts per outcome, the only thing about identities a console may show."""
    for outcome, count in sorted(counts.items()):
        print(f"  {outcome:<18} {count:>8}")
