"""`ins-engine queue status|list|resend|skip`: see and act on what waits for delivery.

These commands open the store file of the configuration beside a running engine (SQLite
lets both write; the engine's workers pick up a resent entry within a second and see a
skip before the skipped message's next attempt). Nothing they print comes from a message
body: control ids, types, times, attempts and the engine's own error texts only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from engine.commands.common import add_config_argument, read_config
from engine.config import Config, sqlite_path
from engine.enrich.store import IdentityTables
from engine.errors import CliError
from engine.store.base import ActionResult, EntryStatus, QueueStatus
from engine.store.sqlite import SqliteStore

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("queue", help="see and act on the delivery queues")
    commands = parser.add_subparsers(dest="queue_command", required=True, metavar="ACTION")

    overview = commands.add_parser(
        "status", help="per route and destination: pending, parked, oldest, last error"
    )
    add_config_argument(overview)
    overview.add_argument("--json", action="store_true", help="print JSON")
    overview.set_defaults(handler=show_status)

    listing = commands.add_parser("list", help="entries of a queue, without patient data")
    add_config_argument(listing)
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--parked", action="store_true", help="parked entries (default: pending)")
    which.add_argument(
        "--status",
        choices=[state.value for state in EntryStatus],
        help="entries in this state (finished ones newest first)",
    )
    which.add_argument(
        "--dropped",
        action="store_true",
        help="messages a route step (or no destination) stopped, newest first",
    )
    listing.add_argument("--route", metavar="R")
    listing.add_argument("--destination", metavar="D")
    listing.add_argument("--limit", type=int, default=100, metavar="N")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=show_list)

    for name, help_text, handler in (
        ("resend", "queue a copy of entries at the tail of their queue", resend),
        ("skip", "give up on pending or parked entries", skip),
    ):
        action = commands.add_parser(name, help=help_text)
        add_config_argument(action)
        action.add_argument("ids", nargs="+", type=int, metavar="ID", help="entry ids")
        action.add_argument("--reason", required=True, help="why (recorded with the action)")
        action.set_defaults(handler=handler)


def show_status(args: argparse.Namespace) -> int:
    config = read_config(args)
    found = {(row.route, row.destination): row for row in _run(config, lambda s: s.queue_status())}
    for route in config.routes:
        for destination in route.destinations:
            key = (route.name, destination.name)
            found.setdefault(key, QueueStatus(*key, 0, 0, None, 0, None))
    rows = [found[key] for key in sorted(found)]
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return 0
    now = time.time()
    _print_table(
        ["ROUTE", "DESTINATION", "PENDING", "PARKED", "OLDEST", "HEAD ATTEMPTS", "LAST ERROR"],
        [
            [
                row.route,
                row.destination,
                row.pending,
                row.parked,
                _age(now - row.oldest_pending_at) if row.oldest_pending_at else "-",
                row.head_attempts,
                row.last_error or "-",
            ]
            for row in rows
        ],
    )
    return 0


def show_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    if args.dropped:
        return _show_dropped(args)
    status = (
        EntryStatus.PARKED if args.parked else EntryStatus(args.status or EntryStatus.PENDING.value)
    )
    entries = _run(
        read_config(args),
        lambda store: store.list_entries(status, args.route, args.destination, args.limit),
    )
    if args.json:
        print(json.dumps([asdict(entry) for entry in entries], indent=2))
        return 0
    _print_table(
        ["ID", "ROUTE", "DESTINATION", "CONTROL ID", "TYPE", "RECEIVED", "ATTEMPTS", "LAST ERROR"],
        [
            [
                entry.entry_id,
                entry.route,
                entry.destination,
                entry.control_id,
                entry.message_type,
                datetime.fromtimestamp(entry.received_at).isoformat(" ", "seconds"),
                entry.attempts,
                entry.last_error or "-",
            ]
            for entry in entries
        ],
    )
    return 0


def _show_dropped(args: argparse.Namespace) -> int:
    """Messages kept but delivered nowhere, with the decision that stopped each."""
    if args.destination:
        raise CliError("--dropped lists messages of a route: --destination does not apply")
    dropped = _run(read_config(args), lambda store: store.dropped_messages(args.route, args.limit))
    if args.json:
        print(json.dumps([asdict(message) for message in dropped], indent=2))
        return 0
    _print_table(
        ["MESSAGE", "ROUTE", "CONTROL ID", "TYPE", "RECEIVED", "STEP", "DECISION"],
        [
            [
                message.message_id,
                message.route,
                message.control_id,
                message.message_type,
                datetime.fromtimestamp(message.received_at).isoformat(" ", "seconds"),
                message.step,
                f"{message.outcome} {message.detail}".strip(),
            ]
            for message in dropped
        ],
    )
    return 0


def resend(args: argparse.Namespace) -> int:
    results = _run(read_config(args), lambda store: store.resend(args.ids, args.reason))
    return _report(results)


def skip(args: argparse.Namespace) -> int:
    results = _run(read_config(args), lambda store: store.skip(args.ids, args.reason))
    return _report(results)


def _report(results: Sequence[ActionResult]) -> int:
    for result in results:
        print(f"entry {result.entry_id}: {result.detail}")
    return 0 if all(result.done for result in results) else 1


def _run(config: Config, action: Callable[[SqliteStore], Awaitable[T]]) -> T:
    """Open the configuration's store file (which must exist), act, close."""
    path = sqlite_path(config.engine.store)
    assert path is not None
    if not Path(path).is_file():
        raise CliError(f"no store at {path}: has the engine run with this configuration?")

    async def main() -> T:
        store = await SqliteStore.open(path, [IdentityTables()])
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _age(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`, `3d04h`: how long the oldest entry has waited."""
    seconds = max(int(seconds), 0)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    for row in cells:
        print(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        )
