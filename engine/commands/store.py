"""`ins-engine store migrate|copy`: the store's schema version, and moving an installation.

`migrate` brings the configuration's store to the schema version of this engine (engines
refuse to start on an older store and name this command); run it with the engines
stopped. `copy FROM TO` copies a whole store into a new, empty one, typically SQLite to
PostgreSQL; see `engine.store.copy`.
"""

from __future__ import annotations

import argparse
import asyncio

from engine.commands.common import add_config_argument, read_config
from engine.errors import CliError, StoreError
from engine.steps.registry import registry
from engine.store.backends import latest_version, migrate, password
from engine.store.copy import copy_store
from engine.store.url import display_url, url_problem


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("store", help="the store's schema, and copying a store")
    commands = parser.add_subparsers(dest="store_command", required=True, metavar="ACTION")

    upgrade = commands.add_parser(
        "migrate", help="bring the configuration's store to this engine's schema version"
    )
    add_config_argument(upgrade)
    upgrade.set_defaults(handler=run_migrate)

    copying = commands.add_parser(
        "copy",
        help="copy a whole store into a new, empty one (SQLite to PostgreSQL, or back)",
        description="Copy messages, queues with their positions, identity outcomes, the "
        "INSi cache and the operator audit from FROM into TO, which must be empty. Stop the "
        "engines using FROM first.",
    )
    copying.add_argument(
        "source", metavar="FROM", help="store URL: sqlite:///path or postgresql://"
    )
    copying.add_argument("target", metavar="TO", help="store URL of a new, empty store")
    copying.add_argument(
        "--password-env",
        metavar="NAME",
        help="environment variable holding the PostgreSQL password (default: libpq's "
        "PGPASSWORD or ~/.pgpass)",
    )
    copying.set_defaults(handler=run_copy)


def run_migrate(args: argparse.Namespace) -> int:
    settings = read_config(args).engine
    try:
        applied = asyncio.run(
            migrate(
                settings.store,
                password(settings.store_password_env),
                registry().store_extensions(),
            )
        )
    except StoreError as error:
        raise CliError(str(error)) from None
    name = display_url(settings.store)
    if applied.before == applied.after:
        print(f"{name}: already at schema version {applied.after}")
    elif applied.before is None:
        print(f"{name}: created at schema version {applied.after}")
    else:
        print(f"{name}: migrated from schema version {applied.before} to {applied.after}")
    return 0


def run_copy(args: argparse.Namespace) -> int:
    for label, url in (("FROM", args.source), ("TO", args.target)):
        problem = url_problem(url)
        if problem:
            raise CliError(f"{label} {display_url(url)}: {problem}")
    try:
        copied = asyncio.run(
            copy_store(
                args.source,
                args.target,
                password(args.password_env),
                registry().store_extensions(),
            )
        )
    except StoreError as error:
        raise CliError(str(error)) from None
    print(
        f"copied {display_url(args.source)} to {display_url(args.target)} "
        f"(schema version {latest_version()}):"
    )
    for table, rows in copied.items():
        print(f"  {table:<18} {rows:>10}")
    return 0
