"""`make demo`: what the engine does to each message of hl7_samples/, shown without names.

It runs the engine as in production, a separate `ins-engine run` process on the demo route
(demo/route.toml: INSi simulator, a folder destination), replays the corpus into it over
MLLP, waits until the folder holds every accepted message, stops the engine with SIGTERM,
then compares each message sent with the one delivered and with the outcome the engine
recorded in its store. The console shows control ids, events, statuses, outcome codes and
the INS kind with the last 4 characters of its matricule: never a name.

    .venv/bin/python -m demo.run [--config demo/route.toml]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.config.settings import load_config
from engine.enrich.identity import read_identity, single_pid
from engine.enrich.outcome import Outcome, ReceivedIns
from engine.errors import EngineError
from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.message import Message
from engine.ins.oids import parse_oid
from engine.store.url import sqlite_path
from engine.tools.replay.acks import ACCEPTED
from engine.tools.replay.files import ReplayFile, ReplayMessage, expand_paths, load_files
from engine.tools.replay.sender import Result, Target, send_files

# The same harness the tests use to run a real engine process and read its JSON log.
from tests.support.engine_process import REPOSITORY, EngineProcess

SAMPLES = REPOSITORY / "hl7_samples"
# The file column gives way (its names are cut, with an ellipsis) so that at 120 columns the
# other ones, the INS last, are shown whole.
FILE_WIDTH = 22
DELIVERY_WAIT_S = 30.0
MARKER = ".ins-engine-demo"  # in the outbox: this folder and the store are the demo's own
MEANINGS = {
    Outcome.ADDED: "INSi found one identity: its INS and traits written into PID",
    Outcome.VERIFIED: "the INS carried is the one INSi returns: kept, with INSi's traits",
    Outcome.RECUPEREE: "found for an unvalidated identity: recorded, never written",
    Outcome.NOT_FOUND: "INSi knows nobody with these traits (01): no INS",
    Outcome.SEVERAL_FOUND: "INSi found several identities (02): no INS",
    Outcome.INCOHERENT: "INS carried, status or traits contradict INSi or PAM FR: removed",
    Outcome.INVALID_TRAITS: "traits INSi cannot be asked with: no call, no INS",
    Outcome.NOT_QUALIFIABLE: "the source says its traits are not INSi's: for a person",
    Outcome.INVALID_INSI_ANSWER: "INSi's answer for this person failed its checks: no INS",
    Outcome.INSI_UNAVAILABLE: "INSi did not answer in time: sent on without INS",
    Outcome.HELD: "an earlier INS conflict of this patient awaits vigilance: no INS",
    Outcome.NOT_APPLICABLE: "not enriched: event, INS life cycle, or identity not VALI",
}


class DemoError(EngineError):
    """The demo cannot run or did not complete; the text says what to do."""


@dataclass(frozen=True)
class DemoRoute:
    """Where the demo route keeps its state (emptied before each run)."""

    config: Path
    route: str
    store: Path
    outbox: Path


@dataclass(frozen=True)
class Row:
    """One message: as replayed, as delivered, and as recorded."""

    message: ReplayMessage
    label: str
    ack: str
    before: Message
    after: Message | None
    record: dict[str, Any] | None


def demo_route(config_file: Path) -> DemoRoute:
    """The demo's paths, after checking that the configuration is one a demo may empty."""
    config = load_config(config_file)
    if not config.insi.simulator:
        raise DemoError(f"{config_file}: the demo runs on the INSi simulator only")
    destinations = [d for route in config.routes for d in route.destinations]
    if len(config.routes) != 1 or len(destinations) != 1 or destinations[0].file is None:
        raise DemoError(f"{config_file}: one route with one file destination expected")
    store = sqlite_path(config.engine.store)
    assert store is not None  # the configuration is valid; its paths are absolute
    return DemoRoute(
        config_file.resolve(), config.routes[0].name, Path(store), Path(destinations[0].file)
    )


def clear(route: DemoRoute) -> None:
    """Start from nothing (a message the store already holds would be a duplicate), but only
    where the demo made its state: a store or folder of another set-up is never emptied."""
    marker = route.outbox / MARKER
    if not marker.exists():
        if route.store.exists() or any(route.outbox.glob("*.hl7")):
            raise DemoError(
                f"{route.outbox} or {route.store} holds messages the demo did not make: "
                "give the demo a folder and a store of its own"
            )
        route.outbox.mkdir(parents=True, exist_ok=True)
        marker.touch()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{route.store}{suffix}").unlink(missing_ok=True)
    for delivered in route.outbox.glob("*.hl7"):
        delivered.unlink()


def wait_for_files(folder: Path, count: int) -> None:
    """Until the destination folder holds `count` messages (bounded: a stuck engine fails)."""
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while len(list(folder.glob("*.hl7"))) < count:
        if time.monotonic() > deadline:
            raise DemoError(f"{folder}: fewer than {count} messages after {DELIVERY_WAIT_S} s")
        time.sleep(0.05)


def corpus() -> list[ReplayFile]:
    files, problems = load_files(expand_paths([str(SAMPLES)]))
    if problems:
        raise DemoError(f"{problems[0].path}: {problems[0].reason}")
    return files


async def run_engine(route: DemoRoute, files: list[ReplayFile]) -> dict[str, str]:
    """Replay the corpus through a real engine; the ACK code of each control id."""
    results: list[Result] = []
    engine = EngineProcess(route.config)
    await engine.start()
    try:
        host, port = engine.address(route.route)
        await send_files(files, Target(host, port), results.append)
        accepted = [result for result in results if result.outcome in ACCEPTED]
        await asyncio.to_thread(wait_for_files, route.outbox, len(accepted))
    finally:
        status = await engine.terminate()
    if status != 0:
        raise DemoError(f"the engine exited with status {status}")
    return {result.message.control_id: result.outcome.value for result in results}


def parse(payload: bytes) -> Message:
    return Message.parse(decode(payload, CharsetPolicy()).text)


def delivered(folder: Path) -> dict[str, Message]:
    """Each delivered message by its MSH-10."""
    messages = (parse(path.read_bytes()) for path in sorted(folder.glob("*.hl7")))
    return {message.msh.field(10): message for message in messages}


def recorded(store: Path) -> dict[str, dict[str, Any]]:
    """The identity outcome the engine recorded for each control id."""
    with sqlite3.connect(store) as connection:
        rows = connection.execute(
            "SELECT m.control_id, o.record FROM identity_outcomes o"
            " JOIN messages m ON m.id = o.message_id"
        ).fetchall()
    return {control_id: json.loads(record) for control_id, record in rows}


def ins_text(ins: ReceivedIns) -> str:
    """`NIR …7878`: the kind of INS and the end of its matricule, enough to tell them apart."""
    oid = parse_oid(ins.oid)
    return f"{oid.name if oid else '?'} …{ins.matricule[-4:]}"


def carried(message: Message) -> list[ReceivedIns]:
    """The INS repetitions of PID-3, read as the enrichment step reads them."""
    pid_index = single_pid(message)
    if pid_index is None:
        return []
    return [ins.received() for ins in read_identity(message, pid_index).ins]


def ins_change(row: Row) -> str:
    """PID-3's INS from the message sent to the one delivered: added, kept, removed…"""
    if row.after is None:
        return "not delivered"
    before, after = (
        ", ".join(ins_text(ins) for ins in carried(message)) for message in (row.before, row.after)
    )
    if before == after:
        return f"kept {after}" if after else "—"
    if not before:
        return f"added {after}"
    return f"changed to {after}" if after else f"removed {before}"


def statuses(message: Message) -> str:
    pid = message.segment("PID")
    return "~".join(pid.repetitions(32)) if pid is not None and pid.field(32) else "—"


def message_table(rows: list[Row]) -> Table:
    table = Table(title="What the engine did to each message", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("file", no_wrap=True, overflow="ellipsis", max_width=FILE_WIDTH)
    for column in ("MSH-10", "event", "PID-32", "outcome", "detail", "INS in PID-3"):
        table.add_column(column, no_wrap=True, min_width=min(len(column), 7))
    for row in rows:
        record = row.record or {}
        table.add_row(
            Text(row.label),  # Text, not markup: a file name may hold brackets
            Text(row.message.control_id),
            row.message.message_type.split("^")[-1],
            Text(statuses(row.before)),
            record.get("outcome", "(none recorded)"),
            Text(record.get("detail") or ""),
            ins_change(row),
        )
    return table


def summary_table(rows: list[Row]) -> Table:
    counts = Counter(row.record["outcome"] for row in rows if row.record is not None)
    table = Table(title="Outcomes", box=box.SIMPLE_HEAD)
    for column in ("outcome", "messages", "meaning"):
        table.add_column(column)
    for outcome in Outcome:
        if counts[outcome.value]:
            table.add_row(outcome.value, str(counts[outcome.value]), MEANINGS.get(outcome, ""))
    table.add_row("total", str(counts.total()), "", style="bold")
    return table


def build_rows(route: DemoRoute, messages: list[ReplayMessage], acks: dict[str, str]) -> list[Row]:
    per_file = Counter(message.file for message in messages)
    outputs = delivered(route.outbox)
    records = recorded(route.store)
    return [
        Row(
            message,
            Path(message.file).name
            + (f" #{message.position}" if per_file[message.file] > 1 else ""),
            acks.get(message.control_id, "-"),
            parse(message.payload),
            outputs.get(message.control_id),
            records.get(message.control_id),
        )
        for message in messages
    ]


def shown_path(path: Path) -> Path:
    return path.relative_to(REPOSITORY) if path.is_relative_to(REPOSITORY) else path


def show(console: Console, route: DemoRoute, rows: list[Row]) -> None:
    console.print(message_table(rows))
    console.print(summary_table(rows))
    acks = Counter(row.ack for row in rows)
    simulated = sum(bool(row.record and row.record["simulated"]) for row in rows)
    console.print(
        f"{len(rows)} messages replayed from {SAMPLES.name}/, ACKs: "
        + ", ".join(f"{count} {code}" for code, count in sorted(acks.items()))
        + f"; delivered to {shown_path(route.outbox)}/, recorded in {shown_path(route.store)}"
    )
    console.print(
        f"[bold yellow]INSi was SIMULATED[/]: the answers for {simulated} messages came from "
        "the engine's local simulator (public test persons of the qualification service; "
        "every other person is invented), never from the national teleservice."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--config",
        type=Path,
        default=REPOSITORY / "demo" / "route.toml",
        help="the demo route; its store and outbox folder are emptied first",
    )
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 120)
    try:
        route = demo_route(args.config)
        clear(route)
        files = corpus()
        console.print(
            f"ins-engine run --config {shown_path(route.config)} (INSi SIMULATED), then "
            f"{sum(len(file.messages) for file in files)} messages of {len(files)} files in "
            f"{SAMPLES.name}/ replayed into route {route.route} over MLLP…"
        )
        acks = asyncio.run(run_engine(route, files))
        console.print("Engine stopped (SIGTERM, exit status 0).")
        messages = [message for file in files for message in file.messages]
        show(console, route, build_rows(route, messages, acks))
    except EngineError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
