"""`ins-engine queue status|list|resend|skip`: see and act on what waits for delivery.

These commands open the configuration's store beside running engines (the engines' workers
pick up a resent entry within a second and see a skip before the skipped message's next
attempt). Nothing they print comes from a message body: control ids, types, times,
attempts and the engine's own error texts only.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import TypeVar

from engine.commands.common import add_config_argument, on_store, read_config
from engine.commands.tables import age, print_table, queue_holder
from engine.errors import CliError
from engine.store.backends import OpenStore
from engine.store.base import ActionResult, EntryStatus, LeaseState, QueueStatus

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

    async def read(store: OpenStore) -> tuple[list[QueueStatus], list[LeaseState]]:
        return await store.queue_status(), await store.leases()

    statuses, leases = on_store(config, read)
    found = {(row.route, row.destination): row for row in statuses}
    for route in config.routes:
        for destination in route.destinations:
            key = (route.name, destination.name)
            found.setdefault(key, QueueStatus(*key, 0, 0, None, 0, None))
    rows = [found[key] for key in sorted(found)]
    now = time.time()
    holders = [queue_holder(leases, row.route, row.destination, now) for row in rows]
    if args.json:
        print(
            json.dumps(
                [
                    {**asdict(row), "delivered_by": holder, "delivered_by_since": since}
                    for row, (holder, since) in zip(rows, holders, strict=True)
                ],
                indent=2,
            )
        )
        return 0
    print_table(
        ["ROUTE", "DESTINATION", "PENDING", "PARKED", "OLDEST", "HEAD ATTEMPTS", "LAST ERROR",
         "DELIVERED BY", "SINCE"],
        [
            [
                row.route,
                row.destination,
                row.pending,
                row.parked,
                age(now - row.oldest_pending_at) if row.oldest_pending_at else "-",
                row.head_attempts,
                row.last_error or "-",
                holder,
                f"{age(now - since)} ago" if since is not None else "-",
            ]
            for row, (holder, since) in zip(rows, holders, strict=True)
        ],
    )  # fmt: skip
    return 0


def show_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    status = (
        EntryStatus.PARKED if args.parked else EntryStatus(args.status or EntryStatus.PENDING.value)
    )
    entries = on_store(
        read_config(args),
        lambda store: store.list_entries(status, args.route, args.destination, args.limit),
    )
    if args.json:
        print(json.dumps([asdict(entry) for entry in entries], indent=2))
        return 0
    print_table(
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


def resend(args: argparse.Namespace) -> int:
    results = on_store(read_config(args), lambda store: store.resend(args.ids, args.reason))
    return _report(results)


def skip(args: argparse.Namespace) -> int:
    results = on_store(read_config(args), lambda store: store.skip(args.ids, args.reason))
    return _report(results)


def _report(results: Sequence[ActionResult]) -> int:
    for result in results:
        print(f"entry {result.entry_id}: {result.detail}")
    return 0 if all(result.done for result in results) else 1
