"""One engine setup of `make bench` under load, for comparing two versions of the code.

    python -m bench.compare KIND [--messages N] [--connections K] [--py-spy FILE]

KIND is a setup of bench/run.py: `ack` (receive, store, acknowledge), `store` (end to end, no
step), `warm` (INS enrichment, warm cache). Prints the acknowledged and delivered messages per
second, the CPU per message of the engine process and of its delivery process, and that of
the engine process's threads (user and system time: the loop's own thread is the one a
CPU-bound engine saturates, the committer's is mostly the disk's system time). Run it
alternately from two checkouts in the same minutes (`cd OTHER && python -m bench.compare
store`): on a shared machine only such alternated figures compare. With `--py-spy FILE` (py-spy
installed), both processes are sampled into FILE as collapsed stacks; with `--perf FILE` (Linux
perf installed, run as root), the engine's loop thread is recorded into FILE and the share of
its CPU in each library is printed: the interpreter's share is the Python run per message.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from bench.processes import engine_config, free_port, server_process
from bench.run import Setup, cpu_seconds, engine_tables, load, receiver_command, wait_delivered

WARM_UP = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["ack", "store", "warm"])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--py-spy", type=Path, help="sample both processes into this file")
    parser.add_argument("--perf", type=Path, help="record the loop thread into this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port, receiver_port = free_port(), free_port()
        route, extra = engine_tables(args.kind, receiver_port)
        config = engine_config(folder, port, route, extra)
        record = folder / "arrivals.txt"
        engine = ["-m", "engine", "run", "--config", str(config)]
        with (
            server_process(receiver_command(receiver_port, record), receiver_port),
            server_process(engine, port) as process,
        ):
            load(port, Setup("warm-up", WARM_UP), 8, 0)  # the cache warm, the code loaded
            spy = _sampler(process.pid, args.py_spy) if args.py_spy else None
            perf = _perf(process.pid, args.perf) if args.perf else None
            total, own = cpu_seconds([process]), cpu_seconds([process], children=False)
            threads = _thread_times(process)
            started = time.monotonic()
            sent: dict[str, float] = {}
            summary = load(port, Setup("measured", args.messages), args.connections, WARM_UP, sent)
            if args.kind != "ack":
                wait_delivered(record, set(sent))
            elapsed = time.monotonic() - started
            total = cpu_seconds([process]) - total
            own = cpu_seconds([process], children=False) - own
            threads = {
                tid: (
                    user - threads.get(tid, (0.0, 0.0))[0],
                    system - threads.get(tid, (0.0, 0.0))[1],
                )
                for tid, (user, system) in _thread_times(process).items()
            }
            for sampler in (spy, perf):
                if sampler is not None:
                    sampler.send_signal(2)
                    sampler.wait()
    per_message = 1e6 / args.messages
    print(
        f"{args.kind}: {summary['msg_per_s']:.0f} ACK/s, {args.messages / elapsed:.0f} done/s; "
        f"CPU µs/msg: {total * per_message:.0f} in all, engine process {own * per_message:.0f}, "
        f"delivery process {(total - own) * per_message:.0f}"
    )
    for tid, (user, system) in sorted(threads.items(), key=lambda item: -sum(item[1])):
        if (user + system) * per_message >= 1:
            name = "loop thread" if tid == process.pid else f"thread {tid}"
            print(
                f"  engine {name}: user {user * per_message:.0f}, "
                f"system {system * per_message:.0f} CPU µs/msg"
            )
    if args.perf:
        print(f"  loop thread by library: {_perf_libraries(args.perf)}")


def _perf(tid: int, output: Path) -> subprocess.Popen[bytes]:
    """Linux perf recording one thread (the loop's: its id is the process's)."""
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: linux-perf)")
    recorder = subprocess.Popen(
        ["perf", "record", "-F", "1000", "-t", str(tid), "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return recorder


def _perf_libraries(recording: Path) -> str:
    """The loop thread's CPU by library, from `perf report`."""
    report = subprocess.run(
        ["perf", "report", "-i", str(recording), "--sort", "dso", "--stdio"],
        capture_output=True,
        text=True,
        check=True,
    )
    shares = [line.split() for line in report.stdout.splitlines() if line.strip()[:1].isdigit()]
    return ", ".join(f"{name} {share}" for share, name, *_ in shares[:6])


def _thread_times(process: psutil.Process) -> dict[int, tuple[float, float]]:
    """User and system CPU seconds of each thread of the process."""
    return {one.id: (one.user_time, one.system_time) for one in process.threads()}


def _sampler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the engine and its delivery process (it needs a moment to attach)."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    command = [spy, "record", "--subprocesses", "--nonblocking", "-r", "200", "-f", "raw"]
    sampler = subprocess.Popen(
        [*command, "-o", str(output), "--pid", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)
    return sampler


if __name__ == "__main__":
    main()
