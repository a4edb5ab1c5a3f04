"""`ins-engine queue status|list|resend|skip`: see and act on what waits for delivery.

These commands open the store file of the configuration beside a running engine (SQLite
lets both write; the engine's workers pick up a resent entry within a second and see a
skip before the skipped message's next attempt). Nothing they print comes from a message
body: control ids, types, times, attempts and the engine's own error texts only.

A skip wins over a send already in flight: the entry stays skipped and nothing more is
sent; if the receiver acknowledged that last send, the audit (and `list --control-id`)
says it was delivered anyway.
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
from engine.errors import CliError
from engine.hl7.codes import shown_type
from engine.replay.acks import AckFormatError, read_ack
from engine.store.base import ActionResult, EntryStatus, MessageTrace, QueueStatus
from engine.store.sqlite import SqliteStore

T = TypeVar("T")
MAX_ID = 2**63 - 1  # SQLite's largest integer
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
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise argparse.ArgumentTypeError(
            f"{text[:30]!r} is not an entry id (a whole number from 1 to {MAX_ID})"
        )
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{text[:30]!r}: a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("say why: the reason is recorded with the action")
    return text.strip()


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
    config = read_config(args)
    _check_names(config, args.route, args.destination)
    if args.control_id is not None:
        return _show_trace(config, args)
    status = (
        EntryStatus.PARKED if args.parked else EntryStatus(args.status or EntryStatus.PENDING.value)
    )
    entries = _run(
        config,
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
                _printable(entry.control_id),
                shown_type(entry.message_type),
                _time(entry.received_at),
                entry.attempts,
                entry.last_error or "-",
            ]
            for entry in entries
        ],
    )
    return 0


def resend(args: argparse.Namespace) -> int:
    config = read_config(args)
    ids = _chosen_entries(config, args)
    return _report(_run(config, lambda store: store.resend(ids, args.reason)), args)


def skip(args: argparse.Namespace) -> int:
    config = read_config(args)
    ids = _chosen_entries(config, args)
    return _report(_run(config, lambda store: store.skip(ids, args.reason)), args)


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
    return _run(
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
    if args.destination or args.parked or args.status:
        raise CliError("--control-id goes with --route only")
    traces = _run(config, lambda store: store.trace(args.control_id, args.route))
    if not traces:
        print(f"no stored message has control id {args.control_id!r}")
        return 1
    release2 = {route.name for route in config.routes if route.mllp_release2}
    answers = [_answer(trace, trace.route in release2) for trace in traces]
    if args.json:
        print(
            json.dumps([_trace_json(t, a) for t, a in zip(traces, answers, strict=True)], indent=2)
        )
        return 0
    for trace, answer in zip(traces, answers, strict=True):
        for line in _trace_lines(trace, answer):
            print(line)
    return 0


def _answer(trace: MessageTrace, release2: bool) -> str:
    """What the sender was answered when the message was stored."""
    if release2:
        return "commit ACK (MLLP release 2)"
    if not trace.ack:
        return "no ACK (MSH-15 asked for none)"
    try:
        return read_ack(trace.ack).code.value
    except AckFormatError:
        return "?"


def _trace_lines(trace: MessageTrace, answer: str) -> list[str]:
    sender = f"{_printable(trace.sending_application)} / {_printable(trace.sending_facility)}"
    lines = [
        f"message {trace.message_id}, route {trace.route}, {shown_type(trace.message_type)}, "
        f"from {sender} ({trace.peer})",
        f"  {_time(trace.received_at)}  stored, answered {answer}",
    ]
    if trace.status.value == "received":
        lines.append("  not routed yet (the route's steps have not finished)")
    elif trace.outcome is not None:
        detail = f" ({trace.outcome_detail})" if trace.outcome_detail else ""
        lines.append(f"  routed, identity outcome {trace.outcome}{detail}")
    for entry in trace.entries:
        copy = f", resent copy of entry {entry.resend_of}" if entry.resend_of else ""
        lines.append(
            f"  entry {entry.entry_id} -> {entry.destination}: {entry.status.value}, "
            f"{entry.attempts} attempt(s){copy}"
        )
        lines += [
            f"    {_time(event.at)}  {_event_text(event.kind, event.detail)}"
            for event in entry.events
        ]
    return lines


def _event_text(kind: str, detail: str) -> str:
    if kind == "failed":
        return f"attempt failed: {detail}"
    if kind == "parked":
        return f"attempt failed, parked: {detail}"
    if kind == "delivered":
        return f"delivered (ACK {detail})" if detail else "delivered"
    return f"{kind}: {detail}"  # an action recorded in the audit (skip, resend as N...)


def _trace_json(trace: MessageTrace, answer: str) -> dict[str, Any]:
    data = asdict(trace)
    del data["ack"]
    data["answer"] = answer
    data["message_type"] = shown_type(trace.message_type)
    return data


def _run(config: Config, action: Callable[[SqliteStore], Awaitable[T]]) -> T:
    """Open the configuration's store file (which must exist), act, close."""
    path = sqlite_path(config.engine.store)
    assert path is not None
    if not Path(path).is_file():
        raise CliError(f"no store at {path}: has the engine run with this configuration?")

    async def main() -> T:
        store = await SqliteStore.open(path)
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).isoformat(" ", "seconds")


def _printable(text: str) -> str:
    """Text a sender chose, safe on a terminal: control characters become '?'."""
    return "".join(char if char.isprintable() else "?" for char in text)


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
