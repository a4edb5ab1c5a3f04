"""`ins-engine reprocess`: run stored messages again through their route's current steps,
e.g. those that left without an INS while INSi was down, once it is back.

Each message chosen gets a copy, a new stored message linked to it, whose MSH-10 is the
original's with `-R<n>` appended (a receiver that drops a control id it has seen must not
drop the copy, and can tell it from the original); the running engine's router runs the
route's current steps on it and queues it, at the tail, for the destinations chosen
(default: those the original went to). Oldest first, so that copies keep their originals'
order in each queue. Nothing printed comes from a message body.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
from collections.abc import Sequence

from engine.commands.common import add_config_argument, on_store, read_config
from engine.config.settings import Config
from engine.errors import CliError
from engine.store.backends import OpenStore
from engine.store.base import MAX_ID, MessageQuery, MessageSummary, Reprocessed, row_id

PAGE = 500
MAX_MESSAGES = 100_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reprocess",
        help="run stored messages again through their route's current steps",
        description="Give message ids, or select with --route and --outcome, --since, --until.",
    )
    add_config_argument(parser)
    parser.add_argument("ids", nargs="*", type=_message_id, metavar="ID", help="message ids")
    parser.add_argument("--route", metavar="R", help="select the messages of this route")
    parser.add_argument(
        "--outcome", metavar="O", help="select those a step decided this (e.g. insi_unavailable)"
    )
    parser.add_argument("--since", type=_moment, metavar="TIME", help="received at or after")
    parser.add_argument("--until", type=_moment, metavar="TIME", help="received before")
    parser.add_argument(
        "--to",
        action="append",
        metavar="D",
        help="send to this destination (repeat; default: where each original went)",
    )
    parser.add_argument("--reason", required=True, type=_reason, help="why (audited)")
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be reprocessed, change nothing"
    )
    parser.set_defaults(handler=reprocess)


def _message_id(text: str) -> int:
    number = row_id(text)
    if number is None:
        raise argparse.ArgumentTypeError(
            f"{text[:30]!r} is not a message id (a whole number from 1 to {MAX_ID})"
        )
    return number


def _moment(text: str) -> float:
    try:
        return dt.datetime.fromisoformat(text).astimezone().timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text[:30]!r}: a date such as 2026-12-01 or 2026-12-01T08:00"
        ) from None


def _reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("say why: the reason is recorded in the audit")
    return text.strip()


def reprocess(args: argparse.Namespace) -> int:
    config = read_config(args)
    selecting = args.route or args.outcome or args.since or args.until
    if args.ids and selecting:
        raise CliError("give message ids or a selection (--route, --outcome...), not both")
    if not args.ids and not args.route:
        raise CliError("give message ids, or select with --route R (and --outcome, --since...)")
    _check_destinations(config, args.route, args.to)

    async def act(store: OpenStore) -> list[Reprocessed] | list[MessageSummary]:
        chosen = await _selection(store, args) if selecting else None
        if args.dry_run:
            return chosen if chosen is not None else await _summaries(store, args.ids)
        ids = args.ids if chosen is None else [message.message_id for message in chosen]
        return await store.reprocess(ids, args.to, _user(), args.reason)

    found = on_store(config, act)
    if args.dry_run:
        for message in found:
            assert isinstance(message, MessageSummary)
            print(_would(message, args.to))
        print(f"{len(found)} message(s) would be reprocessed (dry run: nothing changed)")
        return 0
    results = [result for result in found if isinstance(result, Reprocessed)]
    for result in results:
        print(f"message {result.message_id}: {result.detail}")
    done = sum(result.done for result in results)
    print(f"{done} of {len(results)} message(s) reprocessed")
    return 0 if done == len(results) else 1


async def _selection(store: OpenStore, args: argparse.Namespace) -> list[MessageSummary]:
    """The messages the filters select, oldest first (the order their copies are queued)."""
    found: list[MessageSummary] = []
    before = None
    while len(found) < MAX_MESSAGES:
        query = MessageQuery(
            route=args.route,
            since=args.since,
            until=args.until,
            outcome=args.outcome,
            before_id=before,
            limit=PAGE,
        )
        page = await store.find_messages(query)
        found += page
        if len(page) < PAGE:
            break
        before = page[-1].message_id
    if len(found) >= MAX_MESSAGES:
        raise CliError(f"more than {MAX_MESSAGES} messages selected: narrow the selection")
    return found[::-1]


async def _summaries(store: OpenStore, ids: Sequence[int]) -> list[MessageSummary]:
    details = [await store.message_detail(message_id) for message_id in ids]
    missing = [str(i) for i, detail in zip(ids, details, strict=True) if detail is None]
    if missing:
        raise CliError(f"no such message: {', '.join(missing)}")
    return [detail.summary for detail in details if detail is not None]


def _would(message: MessageSummary, to: Sequence[str] | None) -> str:
    went = sorted({destination for destination, _ in message.deliveries})
    targets = ", ".join(to or went) or "every destination that takes it"
    at = dt.datetime.fromtimestamp(message.received_at).astimezone().isoformat(timespec="seconds")
    return (
        f"message {message.message_id} {message.control_id} {message.message_type} "
        f"{message.route} received {at} -> {targets}"
    )


def _check_destinations(config: Config, route: str | None, to: Sequence[str] | None) -> None:
    """A route or destination the configuration does not have is a usage error."""
    routes = {settings.name: settings for settings in config.routes}
    if route is not None and route not in routes:
        raise CliError(f"no route {route!r} in {config.source} (routes: {', '.join(routes)})")
    known = {
        destination.name
        for settings in ([routes[route]] if route is not None else config.routes)
        for destination in settings.destinations
    }
    unknown = sorted(set(to or ()) - known)
    if unknown:
        where = f"route {route!r}" if route is not None else config.source
        raise CliError(
            f"no destination {', '.join(unknown)} in {where} "
            f"(destinations: {', '.join(sorted(known)) or 'none'})"
        )


def _user() -> str:
    """Who the audit names for a command-line action: the system account."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
