"""`make bench`: every configuration, one load generator, one run, results as ratios.

Each server runs in its own process; the load generator keeps K connections with one
outstanding message each. For the engine's end-to-end configurations a downstream receiver
notes when each message arrives, giving end-to-end latency and delivered throughput.

    python -m bench.run [--quick] [--connections 1 8 32] [--soak N] [--only WORD...]

(`--only ACK` or `--only warm` measures just those setups, with the ceiling beside them, and
no long replay unless `--soak N` asks; `--only fhir` the FHIR destination against the MLLP
one, and the FHIR path's stages alone.)

Writes bench/results/latest.json, latest.md and throughput.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.fhir_path import fhir_path_costs
from bench.fsync import fsync_latency
from bench.loadgen import run_load
from bench.messages import DEFAULT_PATIENT, Patient, adt_message, patients_from_simulator
from bench.processes import engine_config, free_port, server_process
from bench.report import (
    ACK_PATH,
    CEILING,
    DELIVERY_CEILING,
    FHIR_CREATE,
    FHIR_CREATE_MLLP,
    FHIR_UPDATE,
    FHIR_UPDATE_MLLP,
    HALF_RATE,
    STORE_POSTGRESQL,
    STORE_POSTGRESQL_2,
    STORE_SQLITE,
    WARM,
    WARM_ONE_PROCESS,
    write_reports,
)
from tests.support.fhir_server import FhirServer
from tests.support.postgres import PASSWORD, PostgresServer

DELIVERY_TIMEOUT_S = 300


class SharedPostgres:
    """The PostgreSQL server of the shared-store setups, started at its first use (with the
    server's defaults: fsync on, as in production) and stopped at the end of the run; each
    measurement gets a new empty store (a schema of its own)."""

    def __init__(self) -> None:
        self._server: PostgresServer | None = None
        self._count = 0

    def new_store(self) -> str:
        if self._server is None:
            self._server = PostgresServer.start(durable=True)
            os.environ["PGPASSWORD"] = PASSWORD  # the engines read it from their environment
        self._count += 1
        return self._server.create_schema(f"bench_{self._count}")

    def __enter__(self) -> SharedPostgres:
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop()


POSTGRES = SharedPostgres()


class SharedFhirServer:
    """The FHIR server of the FHIR setups (tests/peers/fhir-server, medplum's router in Node,
    started as the tests start it; `make peers` installs it), started at its first use and
    stopped at the end of the run; emptied before each measurement."""

    def __init__(self) -> None:
        self._server: FhirServer | None = None

    def emptied(self) -> FhirServer:
        if self._server is None:
            self._server = FhirServer.start()
        self._server.reset()
        return self._server

    def __enter__(self) -> SharedFhirServer:
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop()


FHIR = SharedFhirServer()


@dataclass
class Setup:
    """One configuration under benchmark."""

    name: str
    messages: int
    peer: str | None = None  # a bench.servers kind
    engine: str | None = (
        None  # "ack", "warm", "cold", "store" or "feed": an ins-engine configuration
    )
    reconnect: bool = False
    patients: tuple[Patient, ...] = (DEFAULT_PATIENT,)
    store: str = "sqlite"  # or "postgresql": one database the engines share
    engines: int = 1  # engine processes, the load spread over them (a shared store only)
    processes: int = 0  # each engine's `[engine] processes` (0: the engine's own choice)
    fhir: bool = False  # "feed": deliver to the bench's FHIR server instead of MLLP
    event: str = "A28"  # "feed": A28 creates each patient; A31 updates them (created first)


class PeakRss:
    """Samples a process's resident memory in a thread until stopped."""

    def __init__(self, process: psutil.Process) -> None:
        self.peak = 0
        self._process = process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, self._process.memory_info().rss)
            except psutil.Error:
                return

    def stop_mb(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak / 2**20, 1)


def receiver_command(port: int, record: Path) -> list[str]:
    """The recording downstream receiver (bench.servers), noting arrivals in `record`."""
    return ["-m", "bench.servers", "receiver", "--port", str(port), "--record", str(record)]


def mllp_destination(port: int) -> str:
    return f'[[routes.destinations]]\nname = "downstream"\nmllp = "127.0.0.1:{port}"\n'


FEED_ACCEPT = 'accept = ["ADT^A28", "ADT^A31"]\n'


def feed_destination(receiver_port: int, fhir_base_url: str | None) -> str:
    """The FHIR setups' destination, with the same `accept`: the FHIR server's (an ITI-104
    feed), or the MLLP receiver's for the baseline."""
    if fhir_base_url is None:
        return mllp_destination(receiver_port) + FEED_ACCEPT
    return (
        f'[[routes.destinations]]\nname = "downstream"\n{FEED_ACCEPT}'
        f'[routes.destinations.fhir]\nbase_url = "{fhir_base_url}"\n'
    )


def engine_tables(
    kind: str, receiver_port: int, fhir_base_url: str | None = None
) -> tuple[str, str]:
    """(route keys, extra tables) of an ins-engine configuration."""
    if kind == "feed":  # no step, a patient feed's events, to MLLP or to FHIR
        return "enrich = false\n" + feed_destination(receiver_port, fhir_base_url), ""
    if kind == "ack":  # a destination that takes nothing: receive, store, answer
        return "enrich = false\n" + mllp_destination(receiver_port) + 'accept = ["NONE^NONE"]\n', ""
    if kind == "store":  # no step: what the store (and delivery) cost end to end
        return "enrich = false\n" + mllp_destination(receiver_port), ""
    latency = 50 if kind == "cold" else 0
    insi = (
        "[insi]\nsimulator = true\nmax_concurrency = 8\nsimulator_synthetic = 10000\n"
        f"simulator_seed = 7\nsimulator_latency_ms = {latency}\n"
    )
    return mllp_destination(receiver_port), insi


def load(port: int | list[int], setup: Setup, connections: int, first: int, sent_at=None) -> dict:  # type: ignore[no-untyped-def]
    """Run the load generator for one setup; message numbers start at `first`."""
    result = asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            lambda n: adt_message(first + n, setup.patients, setup.event),
            setup.messages,
            connections,
            reconnect=setup.reconnect,
            sent_at=sent_at,
        )
    )
    return result.summary()


def arrivals(record: Path) -> dict[str, float]:
    if not record.exists():
        return {}
    lines = record.read_text(encoding="ascii").splitlines()
    return {control_id: float(at) for control_id, at in (line.split() for line in lines)}


def wait_delivered(record: Path, expected: set[str]) -> dict[str, float]:
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        seen = arrivals(record)
        if expected <= seen.keys() or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def stored_deliveries(store: Path, expected: set[str], before: int = 0) -> dict[str, float]:
    """Control id -> delivery time (on time.monotonic's scale) of the messages the engine
    marked delivered in its SQLite store, once all of `expected` are, after the `before`
    delivered earlier (or once the time is up).
    What the FHIR setups and their MLLP baseline count, alike: a FHIR server has no arrival
    record. A parked entry stops the wait with its error (which holds no patient data)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        while True:
            parked = db.execute(
                "SELECT last_error FROM outbox WHERE status = 'parked' LIMIT 1"
            ).fetchone()
            if parked:
                raise RuntimeError(f"the engine parked a message: {parked[0]}")
            (delivered,) = db.execute(
                "SELECT count(*) FROM outbox WHERE status = 'delivered'"
            ).fetchone()
            if delivered >= before + len(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        rows = db.execute(
            "SELECT m.control_id, o.delivered_at FROM outbox o JOIN messages m"
            " ON m.id = o.message_id WHERE o.status = 'delivered'"
        ).fetchall()
    offset = time.time() - time.monotonic()  # delivered_at is wall-clock time
    return {control_id: at - offset for control_id, at in rows if control_id in expected}


def metric_total(port: int, name: str) -> float:
    """The sum of a counter's samples on an engine's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode("utf-8")
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def metrics_seen(http_ports: list[int], delivers: bool) -> dict[str, float]:
    """What the engines' /metrics counted: messages answered and messages delivered (the
    delivery process's attempts reach the engine a few times a second: waited for)."""
    answered = sum(metric_total(port, "ins_engine_messages_received_total") for port in http_ports)
    delivered = 0.0
    deadline = time.monotonic() + (10 if delivers else 0)
    while True:
        delivered = sum(
            metric_total(port, "ins_engine_messages_delivered_total") for port in http_ports
        )
        if delivered >= answered or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    return {"metrics_answered": answered, "metrics_delivered": delivered}


def cpu_seconds(processes: list[psutil.Process], children: bool = True) -> float:
    """CPU time used so far by these processes and (`children`) every process they started."""
    total = 0.0
    for process in processes:
        for one in (process, *(process.children(recursive=True) if children else ())):
            with contextlib.suppress(psutil.Error):
                times = one.cpu_times()
                total += times.user + times.system
    return total


def measure_peer(setup: Setup, connections: int, folder: Path) -> dict:  # type: ignore[type-arg]
    port = free_port()
    assert setup.peer is not None
    command = ["-m", "bench.servers", setup.peer, "--port", str(port)]
    if setup.peer == "receiver":  # the ordered delivery ceiling: what the downstream takes
        command += ["--record", str(folder / f"ceiling-{port}.txt")]
    with server_process(command, port) as proc:
        rss = PeakRss(proc)
        summary = load(port, setup, connections, 0)
        summary["peak_rss_mb"] = rss.stop_mb()
    return summary


def measure_engine(setup: Setup, connections: int, folder: Path) -> dict:  # type: ignore[type-arg]
    assert setup.engine is not None
    ports, receiver_port = [free_port() for _ in range(setup.engines)], free_port()
    record = folder / f"arrivals-{ports[0]}.txt"
    fhir = FHIR.emptied() if setup.fhir else None
    route, extra = engine_tables(setup.engine, receiver_port, fhir.base_url if fhir else None)
    store = POSTGRES.new_store() if setup.store == "postgresql" else None
    keys = f"processes = {setup.processes}\n" if setup.processes else ""
    # Each engine's /metrics, read at the end: the metrics must have seen every message.
    http_ports = [free_port() for _ in ports]
    configs = [
        engine_config(
            folder, port, route, f'{extra}\n[http]\nlisten = "127.0.0.1:{http}"\n', store, keys
        )
        for port, http in zip(ports, http_ports, strict=True)
    ]
    receiver = receiver_command(receiver_port, record)
    with contextlib.ExitStack() as running:
        running.enter_context(server_process(receiver, receiver_port))
        processes = [
            running.enter_context(
                server_process(["-m", "engine", "run", "--config", str(config)], port)
            )
            for config, port in zip(configs, ports, strict=True)
        ]
        rss = [PeakRss(process) for process in processes]
        first = before = 0
        database = folder / f"engine-{ports[0]}.db"
        if setup.engine == "warm" or setup.event != "A28":
            # every patient once: the measured run hits the cache, or updates existing Patients
            warm_up = Setup("warm-up", len(setup.patients), patients=setup.patients)
            warm_sent: dict[str, float] = {}
            load(ports, warm_up, 8, 0, warm_sent)
            if setup.engine == "feed":
                before = len(stored_deliveries(database, set(warm_sent)))
            first = len(setup.patients)
        peer = psutil.Process(fhir.pid) if fhir else None
        peer_cpu_before = cpu_seconds([peer], children=False) if peer else 0.0
        sent_at: dict[str, float] = {}
        cpu_before = cpu_seconds(processes)
        engine_cpu_before = cpu_seconds(processes, children=False)
        started = time.monotonic()
        summary = load(ports, setup, connections, first, sent_at)
        if setup.engine == "feed":
            seen = stored_deliveries(database, set(sent_at), before)
        else:
            seen = wait_delivered(record, set(sent_at)) if setup.engine != "ack" else {}
        if peer:
            summary["fhir_server_cpu_us_per_msg"] = round(
                (cpu_seconds([peer], children=False) - peer_cpu_before) / setup.messages * 1e6,
                1,
            )
        summary["cpu_us_per_msg"] = round(
            (cpu_seconds(processes) - cpu_before) / setup.messages * 1e6, 1
        )
        summary["engine_process_cpu_us_per_msg"] = round(  # without its delivery process
            (cpu_seconds(processes, children=False) - engine_cpu_before) / setup.messages * 1e6,
            1,
        )
        summary["processes"] = sum(1 + len(p.children(recursive=True)) for p in processes)
        if setup.engine != "feed":  # (the feed setups count what the store says)
            summary |= metrics_seen(http_ports, delivers=setup.engine != "ack")
            summary["messages_sent"] = setup.messages + first
        summary["peak_rss_mb"] = round(sum(sample.stop_mb() for sample in rss), 1)
    if seen:
        latencies = sorted(
            (seen[key] - sent) * 1000 for key, sent in sent_at.items() if key in seen
        )
        last = max(seen[key] for key in sent_at if key in seen)
        summary["delivered"] = len(latencies)
        summary["delivered_per_s"] = round(len(latencies) / (last - started), 1)
        summary["e2e_p50_ms"] = round(latencies[len(latencies) // 2], 2)
        summary["e2e_p99_ms"] = round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2)
    return summary


def measure_half_rate(best_rate: float, connections: int, messages: int, folder: Path) -> dict:  # type: ignore[type-arg]
    """ACK latency of the ACK path offered half of its best measured rate, over as many
    connections as that best rate was measured with."""
    port, receiver_port = free_port(), free_port()
    config = engine_config(folder, port, engine_tables("ack", receiver_port)[0])
    receiver = receiver_command(receiver_port, folder / "half-rate-arrivals.txt")
    engine = ["-m", "engine", "run", "--config", str(config)]
    with server_process(receiver, receiver_port), server_process(engine, port) as process:
        rss = PeakRss(process)
        result = asyncio.run(
            run_load(
                "127.0.0.1", port, adt_message, messages, connections, rate_limit=best_rate / 2
            )
        )
        summary = result.summary()
        summary["offered_per_s"] = round(best_rate / 2, 1)
        summary["peak_rss_mb"] = rss.stop_mb()
    return summary


def soak(messages: int, folder: Path) -> dict:  # type: ignore[type-arg]
    """A long replay: RSS growth of the engine and throughput of the first vs last 10%."""
    port, receiver_port = free_port(), free_port()
    config = engine_config(folder, port, "enrich = false\n" + mllp_destination(receiver_port))
    receiver = receiver_command(receiver_port, folder / "soak-arrivals.txt")
    engine = ["-m", "engine", "run", "--config", str(config)]
    with server_process(receiver, receiver_port), server_process(engine, port) as process:
        asyncio.run(run_load("127.0.0.1", port, adt_message, 500, 8))  # warm-up
        baseline = process.memory_info().rss
        rss = PeakRss(process)
        sent_at: dict[str, float] = {}
        asyncio.run(
            run_load(
                "127.0.0.1", port, lambda n: adt_message(10**6 + n), messages, 8, sent_at=sent_at
            )
        )
        peak = rss.stop_mb()
    times = sorted(sent_at.values())
    tenth = len(times) // 10
    first_rate = tenth / (times[tenth] - times[0])
    last_rate = tenth / (times[-1] - times[-tenth - 1])
    return {
        "messages": messages,
        "rss_start_mb": round(baseline / 2**20, 1),
        "rss_peak_mb": peak,
        "rss_growth_mb": round(peak - baseline / 2**20, 1),
        "first_rate": round(first_rate, 1),
        "last_rate": round(last_rate, 1),
        "flatness": round(last_rate / first_rate, 3),
    }


def setups(quick: bool) -> list[Setup]:
    scale = 0.3 if quick else 1.0

    def n(count: int) -> int:
        return max(50, int(count * scale))

    warm_patients = tuple(patients_from_simulator(10000, seed=7)[:300])
    cold_patients = tuple(patients_from_simulator(10000, seed=7))
    # One message per patient, each its own PID-3 PI; few, because the FHIR test server's
    # in-memory repository scans every Patient it holds on each search.
    fed = cold_patients[: n(600)]
    return [
        Setup("bare asyncio (ceiling)", n(6000), peer="bare"),
        Setup(DELIVERY_CEILING, n(6000), peer="receiver"),
        Setup("python-hl7 server", n(3000), peer="python-hl7"),
        Setup("hl7apy MLLPServer", n(60), peer="hl7apy", reconnect=True),
        Setup("ins-engine ACK path", n(4000), engine="ack"),
        Setup(WARM, n(3000), engine="warm", patients=warm_patients),
        Setup(WARM_ONE_PROCESS, n(3000), engine="warm", patients=warm_patients, processes=1),
        Setup(
            "ins-engine end-to-end, cold cache, INSi 50 ms",
            n(1200),
            engine="cold",
            patients=cold_patients,
        ),
        Setup(STORE_SQLITE, n(3000), engine="store"),
        Setup(STORE_POSTGRESQL, n(3000), engine="store", store="postgresql"),
        Setup(STORE_POSTGRESQL_2, n(3000), engine="store", store="postgresql", engines=2),
        Setup(FHIR_CREATE_MLLP, len(fed), engine="feed", patients=fed),
        Setup(FHIR_CREATE, len(fed), engine="feed", patients=fed, fhir=True),
        Setup(FHIR_UPDATE_MLLP, len(fed), engine="feed", patients=fed, event="A31"),
        Setup(FHIR_UPDATE, len(fed), engine="feed", patients=fed, fhir=True, event="A31"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer messages per setup")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--soak", type=int, help="messages of the long replay (200,000; none with --only)"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="WORD", help="only the setups whose name holds one of these"
    )
    args = parser.parse_args()
    if args.soak is None:
        args.soak = 0 if args.only else 200_000
    results: dict[str, dict[int, dict]] = {}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp, POSTGRES, FHIR:
        folder = Path(tmp)
        disk = fsync_latency(folder)
        print(f"fsync of a 4 KB write where the store lives: {disk}", flush=True)
        chosen = [
            setup
            for setup in setups(args.quick)
            if not args.only
            or any(word in setup.name for word in args.only)
            or setup.name in (CEILING, DELIVERY_CEILING)
        ]
        feed_k = 8 if 8 in args.connections else args.connections[0]
        for setup in chosen:
            results[setup.name] = {}
            for connections in args.connections:
                if setup.engine == "feed" and connections != feed_k:
                    continue  # one lane delivers, in order: K changes the intake only
                if setup.engine:
                    summary = measure_engine(setup, connections, folder)
                elif setup.name == DELIVERY_CEILING and connections != 1:
                    continue  # ordered delivery: one message in flight, whatever K says
                else:
                    summary = measure_peer(setup, connections, folder)
                results[setup.name][connections] = summary
                print(f"{setup.name:48s} K={connections:<3d} {summary}", flush=True)
        if ACK_PATH in results:
            best_k, best = max(
                ((k, summary["msg_per_s"]) for k, summary in results[ACK_PATH].items()),
                key=lambda pair: pair[1],
            )
            half = measure_half_rate(best, best_k, 2000 if not args.quick else 500, folder)
            results[HALF_RATE] = {best_k: half}
            print(f"{HALF_RATE:48s} K={best_k:<3d} {half}", flush=True)
        fhir_path = fhir_path_costs(300 if args.quick else 1000) if FHIR_CREATE in results else None
        if fhir_path:
            print(f"FHIR path, µs per message: {fhir_path}", flush=True)
        long_run = soak(args.soak, folder) if args.soak else None
        print(f"soak: {long_run}", flush=True)
    print(write_reports(results, long_run, disk, fhir_path))


if __name__ == "__main__":
    main()
