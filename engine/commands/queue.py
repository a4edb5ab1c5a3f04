"""`ins-engine queue status|list|resend|skip`: see and act on what waits for delivery.

These commands open the configuration's store beside running engines (the engines' workers
pick up a resent entry within a second and see a skip before the skipped message's next
attempt). Nothing they print comes from a message body: control ids, types, times,
attempts and the engine's own error texts only.

A skip wins over a send already in flight: the entry stays skipped and nothing more is
sent; if the receiver acknowledged that last send, the audit (and `list --control-id`)
says it was delivered anyway.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict

from engine.commands import queue_views as views
from engine.commands.common import add_config_argument, on_store, read_config
from engine.config.settings import Config
from engine.enrich.store import KIND as ENRICH_KIND
from engine.errors import CliError
from engine.store.backends import OpenStore
from engine.store.base import MAX_ID, ActionResult, EntryStatus, QueueStatus, row_id
from engine.store.lock import holder
from engine.store.url import sqlite_path

MAX_LIMIT = 100_000


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
        "--control-id",
        metavar="ID",
        help="trace one message (MSH-10): received, answered, routed, each delivery attempt",
    )
    which.add_argument(
        "--dropped",
        action="store_true",
        help="messages a route step (or no destination) stopped, newest first",
    )
    listing.add_argument("--route", metavar="R")
    listing.add_argument("--destination", metavar="D")
    listing.add_argument("--limit", type=_limit, default=100, metavar="N")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=show_list)

    for name, help_text, handler in (
        ("resend", "queue a copy of entries at the tail of their queue", resend),
        ("skip", "give up on pending or parked entries", skip),
    ):
        action = commands.add_parser(name, help=help_text)
        add_config_argument(action)
        action.add_argument("ids", nargs="*", type=_entry_id, metavar="ID", help="entry ids")
        action.add_argument(
            "--parked",
            action="store_true",
            help="instead of ids: every parked entry of --destination (and --route)",
        )
        action.add_argument("--route", metavar="R")
        action.add_argument("--destination", metavar="D")
        action.add_argument(
            "--reason", required=True, type=_reason, help="why (recorded with the action)"
        )
        action.set_defaults(handler=handler)


def _entry_id(text: str) -> int:
    number = row_id(text)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"{text[:30]!r} is not an entry id (a whole number from 1 to {MAX_ID})"
        )
    return number


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text[:30]!r}: a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("say why: the reason is recorded with the action")
    return text.strip()


def show_status(args: argparse.Namespace) -> int:
    config = read_config(args)

    async def snapshot(store: OpenStore) -> views.Status:
        queues = await store.queue_status()
        found = {(row.route, row.destination): row for row in queues}
        for route in config.routes:
            for destination in route.destinations:
                key = (route.name, destination.name)
                found.setdefault(key, QueueStatus(*key, 0, 0, None, 0, None))
        database = sqlite_path(config.engine.store)
        return views.Status(
            [found[key] for key in sorted(found)],
            views.insi_state(await store.states()),
            await store.unrouted(),
            holder(database) if database is not None else None,
            await store.leases(),
            await store.engines(),
        )

    status = on_store(config, snapshot)
    if args.json:
        print(json.dumps(status.to_json(time.time()), indent=2))
        return 0
    status.print(any(route.uses(ENRICH_KIND) for route in config.routes), time.time())
    return 0


def show_list(args: argparse.Namespace) -> int:
    config = read_config(args)
    _check_names(config, args.route, args.destination)
    if args.control_id is not None:
        return _show_trace(config, args)
    if args.dropped:
        return _show_dropped(config, args)
    status = (
        EntryStatus.PARKED if args.parked else EntryStatus(args.status or EntryStatus.PENDING.value)
    )
    entries = on_store(
        config,
        lambda store: store.list_entries(status, args.route, args.destination, args.limit),
    )
    if args.json:
        print(json.dumps([asdict(entry) for entry in entries], indent=2))
        return 0
    views.print_entries(entries)
    return 0


def _show_dropped(config: Config, args: argparse.Namespace) -> int:
    """Messages kept but delivered nowhere, with the decision that stopped each."""
    if args.destination:
        raise CliError("--dropped lists messages of a route: --destination does not apply")
    dropped = on_store(config, lambda store: store.dropped_messages(args.route, args.limit))
    if args.json:
        print(json.dumps([asdict(message) for message in dropped], indent=2))
        return 0
    views.print_dropped(dropped)
    return 0


def resend(args: argparse.Namespace) -> int:
    config = read_config(args)
    ids = _chosen_entries(config, args)
    return _report(on_store(config, lambda store: store.resend(ids, args.reason)), args)


def skip(args: argparse.Namespace) -> int:
    config = read_config(args)
    ids = _chosen_entries(config, args)
    return _report(on_store(config, lambda store: store.skip(ids, args.reason)), args)


def _chosen_entries(config: Config, args: argparse.Namespace) -> list[int]:
    """The ids given, or with `--parked` every parked entry of one destination."""
    if not args.parked:
        if not args.ids:
            raise CliError("give entry ids, or --parked --destination NAME")
        if args.route or args.destination:
            raise CliError("--route and --destination go with --parked, not with entry ids")
        return list(args.ids)
    if args.ids:
        raise CliError("give entry ids or --parked, not both")
    if not args.destination:
        raise CliError("--parked needs --destination NAME (and --route if several routes have it)")
    _check_names(config, args.route, args.destination)
    routes = [
        route.name
        for route in config.routes
        if (args.route is None or route.name == args.route)
        and any(destination.name == args.destination for destination in route.destinations)
    ]
    if len(routes) > 1:
        raise CliError(
            f"destination {args.destination!r} is in routes {', '.join(routes)}: add --route"
        )
    return on_store(
        config, lambda store: store.entry_ids(EntryStatus.PARKED, routes[0], args.destination)
    )


def _check_names(config: Config, route: str | None, destination: str | None) -> None:
    """A route or destination the configuration does not have is a usage error, not an
    empty answer."""
    routes = {settings.name: settings for settings in config.routes}
    if route is not None and route not in routes:
        known = ", ".join(routes) or "none"
        raise CliError(f"no route {route!r} in {config.source} (routes: {known})")
    if destination is None:
        return
    names = sorted(
        {
            settings.name
            for candidate in ([routes[route]] if route is not None else config.routes)
            for settings in candidate.destinations
        }
    )
    if destination not in names:
        where = f"route {route!r}" if route is not None else config.source
        raise CliError(
            f"no destination {destination!r} in {where} (destinations: "
            f"{', '.join(names) or 'none'})"
        )


def _report(results: Sequence[ActionResult], args: argparse.Namespace) -> int:
    for result in results:
        print(f"entry {result.entry_id}: {result.detail}")
    if args.parked:
        done = sum(result.done for result in results)
        print(
            f"{done} of {len(results)} parked entries of {args.destination}: {args.queue_command}"
        )
    return 0 if all(result.done for result in results) else 1


def _show_trace(config: Config, args: argparse.Namespace) -> int:
    if args.destination:
        raise CliError("--control-id goes with --route only")
    traces = on_store(config, lambda store: store.trace(args.control_id, args.route))
    if not traces:
        print(f"no stored message has control id {args.control_id!r}")
        return 1
    release2 = {route.name for route in config.routes if route.mllp_release2}
    answers = [views.answer_of(trace, trace.route in release2) for trace in traces]
    pairs = list(zip(traces, answers, strict=True))
    if args.json:
        print(json.dumps([views.trace_json(trace, answer) for trace, answer in pairs], indent=2))
        return 0
    for trace, answer in pairs:
        print("\n".join(views.trace_lines(trace, answer)))
    return 0
