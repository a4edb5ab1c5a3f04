"""`ins-engine messages`: find stored messages, as the console's message list does, and
print them (a table, JSON) or export them as CSV.

A command of its own rather than `queue list` grown: `queue list` shows a queue's entries
(one per destination, the rows `queue resend` and `queue skip` act on), this one shows
messages, each with every destination's state and its steps' outcomes. It prints no patient
data and searches by none but the local identifier: a search by name or birth date is the
console's, for the vigilance role, audited.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import asdict
from pathlib import Path

from engine.commands.common import add_config_argument, on_store, read_config
from engine.errors import CliError
from engine.store.base import MAX_ID, EntryStatus, MessageSummary, row_id
from engine.store.roles import ConsoleQueries
from engine.tools.message_search import (
    EXPORT_COLUMNS,
    EXPORT_LIMIT,
    Search,
    SearchError,
    every_match,
    export_row,
    outcome_meanings,
)
from engine.tools.spreadsheet import csv_bytes

OPTIONS = (  # (flag, filter name, help)
    ("--control-id", "control_id", "MSH-10 starts with this"),
    ("--patient-id", "patient_id", "the local patient identifier (PID-3 of type PI)"),
    ("--application", "application", "MSH-3, the sending application"),
    ("--facility", "facility", "MSH-4, the sending facility"),
    ("--type", "type", "MSH-9: ADT^A08 (a type and event) or ADT (every event of a type)"),
    ("--route", "route", "the route that received it"),
    ("--destination", "destination", "it went to this destination (with --status: in it)"),
    ("--outcome", "outcome", "one of its steps decided this (--outcomes lists them)"),
    ("--since", "since", "received at or after: 2024-01-31 or 2024-01-31T08:00 (local time)"),
    ("--until", "until", "received before, likewise"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "messages", help="find stored messages (no patient data), print or export them as CSV"
    )
    add_config_argument(parser)
    for flag, name, help_text in OPTIONS:
        parser.add_argument(flag, dest=name, metavar="TEXT", help=help_text)
    parser.add_argument(
        "--status", choices=[status.value for status in EntryStatus], help="a delivery's state"
    )
    parser.add_argument(
        "--before", type=_message_id, metavar="ID", help="the next page: messages older than ID"
    )
    parser.add_argument("--limit", type=_limit, default=50, metavar="N", help="default 50")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument(
        "--csv",
        metavar="FILE",
        help=f"write every match (up to {EXPORT_LIMIT}) as CSV to FILE ('-': standard output)",
    )
    output.add_argument(
        "--outcomes", action="store_true", help="list the outcome codes and what each means"
    )
    parser.set_defaults(handler=show_messages)


def _message_id(text: str) -> int:
    number = row_id(text)
    if number is None:
        raise argparse.ArgumentTypeError(f"{text[:30]!r}: a message id from 1 to {MAX_ID}")
    return number


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text[:30]!r}: a whole number from 1 to 1000")
    return int(text)


def show_messages(args: argparse.Namespace) -> int:
    if args.outcomes:
        for code, meaning in outcome_meanings().items():
            print(f"{code:<20} {meaning}")
        return 0
    config = read_config(args)
    typed = {name: getattr(args, name) for _, name, _ in OPTIONS}
    search = Search.of({**typed, "status": args.status})
    try:
        query = search.query(args.before, args.limit)
    except SearchError as error:
        raise CliError(str(error)) from None
    if args.csv is not None:
        rows = on_store(config, lambda store: _every_row(store, search))
        _write(args.csv, csv_bytes(rows, EXPORT_COLUMNS))
        return 0
    found = on_store(config, lambda store: store.find_messages(query))
    if args.json:
        print(json.dumps([_json(summary) for summary in found], indent=2))
        return 0
    _print(found, args.limit)
    return 0


async def _every_row(store: ConsoleQueries, search: Search) -> list[dict[str, object]]:
    return [export_row(summary) async for summary in every_match(store, search)]


def _write(target: str, data: bytes) -> None:
    if target == "-":
        sys.stdout.buffer.write(data)
        return
    try:
        Path(target).write_bytes(data)
    except OSError as error:
        raise CliError(f"cannot write {target}: {error.strerror}") from None


def _json(summary: MessageSummary) -> dict[str, object]:
    found = asdict(summary)
    found["ack"] = summary.ack.decode("ascii", "replace")
    found["deliveries"] = {name: state.value for name, state in summary.deliveries}
    return found


def _print(found: list[MessageSummary], limit: int) -> None:
    if not found:
        print("no message matches")
        return
    print(f"{'id':>8}  {'received':19}  {'route':12}  {'control id':20}  {'type':9}  deliveries")
    for summary in found:
        received = dt.datetime.fromtimestamp(summary.received_at).strftime("%Y-%m-%d %H:%M:%S")
        deliveries = " ".join(f"{name}={state.value}" for name, state in summary.deliveries)
        outcomes = f"  [{' '.join(summary.outcomes)}]" if summary.outcomes else ""
        print(
            f"{summary.message_id:>8}  {received}  {summary.route:12.12}  "
            f"{summary.control_id:20.20}  {summary.message_type:9.9}  "
            f"{deliveries or summary.status}{outcomes}"
        )
    if len(found) == limit:
        print(f"older messages: add --before {found[-1].message_id}")
