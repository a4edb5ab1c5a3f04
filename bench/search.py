"""The message search over a large store: each kind of search, timed through the store's own
`find_messages` (what the console and `ins-engine messages` call), on SQLite and PostgreSQL.

The store is filled with synthetic messages spread over 30 days, as a hospital's feeds
would leave them: three routes (ADT to the EHR and an archive, results to the laboratory,
ADT to a warehouse), 200,000 patients, the enrichment outcomes of a real feed (an INSi
outage of two hours gives the `insi_unavailable` ones), a few parked and pending entries.
Rows are written with the indexes dropped, then the indexes made again and the planner's
statistics gathered (`ANALYZE`, which PostgreSQL's autovacuum does on its own; SQLite's
planner reads what it finds). Each search runs `--runs` times on a page of 50; the figures
are the median and the 99th percentile of those runs, in milliseconds.

    .venv/bin/python bench/search.py [--messages 1000000] [--runs 30] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from engine.steps.registry import registry  # noqa: E402
from engine.store.backends import open_store  # noqa: E402
from engine.store.base import EntryStatus, MessageQuery  # noqa: E402
from tests.support.postgres import PASSWORD, PostgresServer  # noqa: E402

SEED = 20261207
START = 1_790_000_000.0  # the first message's reception (epoch)
DAYS = 30
PATIENTS = 200_000
RAW = b"MSH|^~\\&|" + b"x" * 600  # a body of a usual ADT's size (never read by a search)
OUTAGE = (START + 12 * 86400, START + 12 * 86400 + 7200)  # INSi down two hours on day 12
ROUTES = (  # name, share, sender, destinations, types
    ("pas-ehr", 0.80, "GAM", ("ehr", "archive"), ("ADT^A01", "ADT^A03", "ADT^A08", "ADT^A28")),
    ("lab-results", 0.15, "LIS", ("lims",), ("ORU^R01",)),
    ("pas-warehouse", 0.05, "GAM", ("fhir",), ("ADT^A08", "ADT^A31")),
)
OUTCOMES = (  # of the enrichment step on pas-ehr, with their weights
    ("added", 60),
    ("verified", 15),
    ("not_applicable", 17),
    ("not_found", 3),
    ("incoherent", 2),
    ("invalid_traits", 1),
    ("several_found", 1),
    ("not_qualifiable", 1),
)


@dataclass(frozen=True)
class Data:
    messages: list[tuple[Any, ...]]
    entries: list[tuple[Any, ...]]
    decisions: list[tuple[Any, ...]]


def synthetic(count: int) -> Data:
    """`count` messages, their outbox entries and their decisions, ids from 1."""
    rng = random.Random(SEED)
    messages, entries, decisions = [], [], []
    step = DAYS * 86400 / count
    codes, weights = zip(*OUTCOMES, strict=True)
    names = [f"NOM{n:05d}" for n in range(20_000)]
    for message_id in range(1, count + 1):
        at = START + message_id * step
        route, sender, destinations, types = _route(rng)
        patient = rng.randrange(PATIENTS)
        status = "routed"
        messages.append(
            (
                message_id, at, route, "127.0.0.1:5000", sender, f"SITE{patient % 4}",
                f"MSG{message_id:010d}", rng.choice(types), b"h" * 16, len(RAW), RAW,
                b"MSH|ACK", status, f"IPP{patient:07d}", names[patient % len(names)],
                f"{1930 + patient % 90}{1 + patient % 12:02d}{1 + patient % 28:02d}",
            )
        )  # fmt: skip
        for destination in destinations:
            state = "pending" if message_id > count - 20 else "delivered"
            if rng.random() < 0.0001:
                state = "parked"
            entries.append((message_id, route, destination, state, at))
        if route == "pas-ehr":
            outcome = rng.choices(codes, weights)[0]
            if OUTAGE[0] <= at < OUTAGE[1]:
                outcome = "insi_unavailable"
            decisions.append((message_id, at, "", "ins_enrich", "ins_enrich", outcome, ""))
    return Data(messages, entries, decisions)


def _route(rng: random.Random) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    pick, total = rng.random(), 0.0
    for name, share, sender, destinations, types in ROUTES:
        total += share
        if pick < total:
            return name, sender, destinations, types
    return ROUTES[0][0], ROUTES[0][2], ROUTES[0][3], ROUTES[0][4]


MESSAGE_COLUMNS = (
    "id, received_at, route, peer, sending_application, sending_facility, control_id, "
    "message_type, content_hash, size, raw, ack, status, patient_id, patient_name, birth_date"
)
ENTRY_COLUMNS = (
    "message_id, route, destination, status, updated_at, attempts, next_attempt_at, patient_key"
)
DECISION_COLUMNS = "message_id, recorded_at, destination, step, kind, outcome, detail"


def fill_sqlite(path: Path, data: Data) -> None:
    with sqlite3.connect(path) as db:
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f"DROP INDEX {name}")
        db.executemany(_insert("messages", MESSAGE_COLUMNS, 16), data.messages)
        db.executemany(_insert("outbox", ENTRY_COLUMNS, 5, ", 1, 0, ''"), data.entries)
        db.executemany(_insert("step_decisions", DECISION_COLUMNS, 7), data.decisions)
        for _, sql in indexes:
            db.execute(sql)
        db.execute("ANALYZE")


def fill_postgresql(url: str, data: Data) -> None:
    with psycopg.connect(url, password=PASSWORD, autocommit=True) as db:
        indexes = db.execute(
            """SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()
               AND indexname NOT LIKE '%%_pkey' AND indexname NOT LIKE '%%_key'"""
        ).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')  # type: ignore[arg-type]
        with db.transaction():
            _copy(db, "messages", MESSAGE_COLUMNS, data.messages)
            _copy(db, "outbox", ENTRY_COLUMNS, ((*row, 1, 0, "") for row in data.entries))
            _copy(db, "step_decisions", DECISION_COLUMNS, data.decisions)
        for _, sql in indexes:
            db.execute(sql)
        db.execute("ANALYZE")


def _copy(
    db: psycopg.Connection, table: str, columns: str, rows: Iterator[Any] | list[Any]
) -> None:
    with db.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[arg-type]
        for row in rows:
            copy.write_row(row)


def _insert(table: str, columns: str, count: int, constants: str = "") -> str:
    """An INSERT of `count` parameters and the `constants` after them (constant text)."""
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * count)}{constants})"  # noqa: S608


def searches(count: int) -> dict[str, MessageQuery]:
    """Each kind of search, with values the synthetic store holds."""
    middle = START + DAYS * 86400 / 2
    mid_id = count // 2
    return {
        "newest, no filter": MessageQuery(),
        "control id prefix": MessageQuery(control_id=f"MSG{mid_id:010d}"[:-1]),
        "local patient identifier": MessageQuery(patient_id="IPP0004242"),  # 5 messages
        "sender (MSH-3)": MessageQuery(sending_application="LIS"),
        "facility (MSH-4)": MessageQuery(sending_facility="SITE2"),
        "type and event (ADT^A08)": MessageQuery(message_type="ADT^A08"),
        "type (ORU)": MessageQuery(message_type="ORU"),
        "route": MessageQuery(route="pas-warehouse"),
        "destination parked": MessageQuery(destination="ehr", status=EntryStatus.PARKED),
        "destination pending": MessageQuery(destination="lims", status=EntryStatus.PENDING),
        "outcome, rare (insi_unavailable)": MessageQuery(outcome="insi_unavailable"),
        "outcome, common (added)": MessageQuery(outcome="added"),
        "outcome + one day": MessageQuery(outcome="not_found", since=middle, until=middle + 86400),
        "one hour": MessageQuery(since=middle, until=middle + 3600),
        "name prefix + birth date": MessageQuery(patient_name="NOM0424", birth_date="19420715"),
        "name prefix": MessageQuery(patient_name="NOM042"),
        "route + outcome, page deep in": MessageQuery(
            route="pas-ehr", outcome="incoherent", before_id=mid_id
        ),
    }


async def time_searches(url: str, count: int, runs: int) -> dict[str, tuple[float, float, int]]:
    store = await open_store(url, PASSWORD, extensions=registry().store_extensions())
    figures = {}
    try:
        for name, query in searches(count).items():
            found = await store.find_messages(query)  # warm the cache as a console would
            spent = []
            for _ in range(runs):
                began = time.perf_counter()
                await store.find_messages(query)
                spent.append((time.perf_counter() - began) * 1000)
            p99 = statistics.quantiles(spent, n=100)[98] if runs > 1 else spent[0]
            figures[name] = (statistics.median(spent), p99, len(found))
    finally:
        await store.close()
    return figures


async def prepare(url: str) -> None:
    store = await open_store(url, PASSWORD, extensions=registry().store_extensions())
    await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    began = time.perf_counter()
    data = synthetic(args.messages)
    print(
        f"{len(data.messages):,} messages, {len(data.entries):,} entries, "
        f"{len(data.decisions):,} decisions generated in {time.perf_counter() - began:.0f} s",
        flush=True,
    )
    results: dict[str, dict[str, tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="ins-engine-search-") as folder:
        if args.backend in ("sqlite", "both"):
            path = Path(folder) / "search.db"
            url = f"sqlite:///{path}"
            asyncio.run(prepare(url))
            began = time.perf_counter()
            fill_sqlite(path, data)
            print(f"SQLite filled in {time.perf_counter() - began:.0f} s", flush=True)
            results["SQLite"] = asyncio.run(time_searches(url, args.messages, args.runs))
        if args.backend in ("postgresql", "both"):
            server = PostgresServer.start(durable=True)
            try:
                url = server.create_schema("search")
                asyncio.run(prepare(url))
                began = time.perf_counter()
                fill_postgresql(url, data)
                print(f"PostgreSQL filled in {time.perf_counter() - began:.0f} s", flush=True)
                results["PostgreSQL"] = asyncio.run(time_searches(url, args.messages, args.runs))
            finally:
                server.stop()
    print_table(results, args.messages, args.runs)
    return 0


def print_table(
    results: dict[str, dict[str, tuple[float, float, int]]], count: int, runs: int
) -> None:
    backends = list(results)
    print(f"\n{count:,} stored messages, {runs} runs of each search, a page of 50 (ms)\n")
    print("| search | " + " | ".join(f"{b} median | {b} p99" for b in backends) + " | found |")
    print("|---|" + "---:|---:|" * len(backends) + "---:|")
    for name in next(iter(results.values())):
        cells = []
        for backend in backends:
            median, p99, _ = results[backend][name]
            cells += [f"{median:.1f}", f"{p99:.1f}"]
        found = next(iter(results.values()))[name][2]
        print(f"| {name} | " + " | ".join(cells) + f" | {found} |")


if __name__ == "__main__":
    sys.exit(main())
