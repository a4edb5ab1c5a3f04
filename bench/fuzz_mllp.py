"""Mutated headers over MLLP to a running engine: every block answered, nothing stuck or lost.

    PYTHONPATH=. .venv/bin/python bench/fuzz_mllp.py [--count 20000] [--seed 26]

Starts `ins-engine run` (SQLite store in a temporary folder, one route whose destination
is python-hl7's MLLP server on loopback), then sends `--count` samples of hl7_samples/ with
mutated headers (`tests/support/mutations.py`, the generator of the suite's in-process
fuzz test) on `--connections` connections. Each sample is followed on its connection by a
sentinel the engine always refuses at once (an unknown MSH-18): whatever arrives before the
sentinel's NACK is the sample's answer, so a sample left unanswered is seen without waiting
for a timeout. It then waits until the engine has no pending entry left.

python-hl7's server drops its connection on a message it cannot navigate (an empty segment,
which the engine accepts and forwards as received): the destination parks a message after
3 attempts (`on_failure = "park"`) so that such a message is counted, not left blocking the
queue as `"block"` would rightly do.

Checked, and the exit status is 1 when one fails: every sample gets exactly one ACK or
NACK (none only for an ACK or an MSH-15 asking for none); every message acknowledged with
AA/CA reaches the receiver or is parked; no entry is left pending; the engine logs no
exception and no error but the parked messages'. Every wait is bounded (`--timeout-s`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.errors import EngineError  # noqa: E402
from engine.hl7.header import Header  # noqa: E402
from engine.hl7.message import Message  # noqa: E402
from engine.mllp.codec import NEED_DATA, Frame, FrameDecoder, encode_frame  # noqa: E402
from engine.store.base import EntryStatus, EntrySummary  # noqa: E402
from engine.store.sqlite import SqliteStore  # noqa: E402
from tests.support.engine_process import EngineProcess  # noqa: E402
from tests.support.mutations import Sample, may_go_unanswered, samples  # noqa: E402
from tests.support.python_hl7 import python_hl7_receiver  # noqa: E402

SENTINEL = (
    "MSH|^~\\&|FUZZ|FUZZ|INS-ENGINE|FUZZ|20260101000000||ADT^A28^ADT_A05|S{n}|P|2.5|||||FRA|"
    "FUZZ-SENTINEL\rEVN||20260101000000\r"
)
READ_TIMEOUT_S = 30.0  # one answer; the engine answers in milliseconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(folder: Path, downstream_port: int) -> Path:
    config = folder / "engine.toml"
    config.write_text(
        f"""
[engine]
store = "sqlite:///{folder}/engine.db"
log_format = "json"

[[routes]]
name = "fuzz"
listen = "127.0.0.1:{free_port()}"
enrich = false

[[routes.destinations]]
name = "python-hl7"
mllp = "127.0.0.1:{downstream_port}"
backoff_base_s = 0.05
backoff_cap_s = 1.0
on_failure = "park"
max_attempts = 3
"""
    )
    return config


class Tally:
    """What the samples got back, and what went wrong (by sample number)."""

    def __init__(self) -> None:
        self.codes: collections.Counter[str] = collections.Counter()
        self.accepted: set[str] = set()  # control ids acknowledged AA/CA
        self.problems: list[str] = []

    def answered(self, sample: Sample, replies: list[bytes]) -> None:
        where = f"sample {sample.number} ({sample.mutation})"
        if not replies:
            if may_go_unanswered(sample.payload):
                self.codes["none (an ACK, or MSH-15 asks for none)"] += 1
            else:
                self.problems.append(f"{where}: no answer")
            return
        if len(replies) > 1:
            self.problems.append(f"{where}: {len(replies)} answers")
        try:
            ack = Message.parse(replies[0].decode("latin-1"))
            msa = ack.segment("MSA")
            assert msa is not None
        except (EngineError, AssertionError):
            self.problems.append(f"{where}: unreadable answer")
            return
        err = ack.segment("ERR")
        code = msa.field(1)
        error = re.sub(r"\D.*", "", err.field(3), flags=re.S) if err is not None else ""
        self.codes[f"{code} {error}".strip()] += 1
        if code in ("AA", "CA"):
            self.accepted.add(control_id(sample.payload))


def control_id(payload: bytes) -> str:
    """MSH-10 as python-hl7 (reading Latin-1) records it."""
    return Header.from_message(Message.parse(payload.decode("latin-1"))).control_id


async def send_share(
    address: tuple[str, int], share: list[Sample], tally: Tally, first: int
) -> None:
    """One connection: each sample, then a sentinel; the answers up to the sentinel's."""
    reader, writer = await asyncio.open_connection(*address)
    decoder = FrameDecoder(1 << 24)
    try:
        for offset, sample in enumerate(share):
            sentinel = f"S{first + offset}"
            writer.write(
                encode_frame(sample.payload)
                + encode_frame(SENTINEL.format(n=first + offset).encode())
            )
            await writer.drain()
            replies: list[bytes] = []
            while True:
                event = decoder.next_event()
                if event is NEED_DATA:
                    data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT_S)
                    if not data:
                        raise ConnectionError("engine closed the connection")
                    decoder.feed(data)
                    continue
                if not isinstance(event, Frame):
                    continue
                if f"\rMSA|AE|{sentinel}|".encode() in event.payload:
                    break
                replies.append(event.payload)
            tally.answered(sample, replies)
    finally:
        writer.close()


async def pending_entries(database: Path) -> int:
    store = await SqliteStore.open(str(database))
    try:
        return sum(status.pending for status in await store.queue_status())
    finally:
        await store.close()


async def entries(database: Path, status: EntryStatus) -> list[EntrySummary]:
    store = await SqliteStore.open(str(database))
    try:
        return await store.list_entries(status, None, None, 1_000_000)
    finally:
        await store.close()


async def run(count: int, seed: int, connections: int) -> int:
    generated = list(samples(count, seed))
    tally = Tally()
    receiver_crashes = 0

    def receiver_crashed(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """python-hl7's server dropped a connection on a message it could not read."""
        nonlocal receiver_crashes
        receiver_crashes += 1

    asyncio.get_running_loop().set_exception_handler(receiver_crashed)
    with tempfile.TemporaryDirectory(prefix="fuzz-mllp-") as folder:
        database = Path(folder) / "engine.db"
        async with python_hl7_receiver() as downstream:
            config = write_config(Path(folder), downstream.port)
            async with EngineProcess(config) as engine:
                address = engine.address("fuzz")
                started = time.perf_counter()
                shares = [generated[k::connections] for k in range(connections)]
                await asyncio.gather(
                    *(
                        send_share(address, share, tally, k * count)
                        for k, share in enumerate(shares)
                    )
                )
                sent_s = time.perf_counter() - started
                while await pending_entries(database):  # noqa: ASYNC110 - no event to wait on
                    await asyncio.sleep(0.2)
                drained_s = time.perf_counter() - started
                assert await engine.terminate() == 0, "the engine did not stop cleanly"
        parked = await entries(database, EntryStatus.PARKED)
        delivered = len(await entries(database, EntryStatus.DELIVERED))
    received = collections.Counter(downstream.control_ids)
    lost = tally.accepted - set(received) - {entry.control_id for entry in parked}
    failed = [r for r in engine.records if r.get("event") == "delivery failed, will retry"]
    bad_lines = [  # a parked message is an error line too: it is counted above
        r
        for r in engine.records
        if (r.get("level") in ("error", "critical") and r.get("event") != "message parked")
        or "exception" in r
        or r.get("event") == "(not JSON)"
    ]
    print(f"samples sent            {count} (seed {seed}, {connections} connections)")
    print(f"sent and answered in    {sent_s:.1f} s ({count / sent_s:.0f} samples/s)")
    print(f"queue drained after     {drained_s:.1f} s")
    for code, number in tally.codes.most_common():
        print(f"  answer {code:<38} {number}")
    print(f"accepted (AA/CA)        {len(tally.accepted)} distinct control ids")
    print(f"delivered (engine)      {delivered}")
    print(f"received downstream     {len(received)} distinct control ids")
    print(f"delivery retries        {len(failed)}")
    print(f"python-hl7 crashes      {receiver_crashes} (connections it dropped)")
    print(f"parked at end           {len(parked)}")
    for error, number in collections.Counter(e.last_error for e in parked).most_common():
        print(f"  {error:<60} {number}")
    print(f"lost (acked, neither received nor parked) {len(lost)}")
    print(f"answer problems         {len(tally.problems)}")
    print(f"error or exception logs {len(bad_lines)}")
    for line in tally.problems[:10]:
        print(f"  {line}")
    for record in bad_lines[:5]:
        print(f"  {record}")
    ok = not (tally.problems or lost or bad_lines)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    args = parser.parse_args()

    async def bounded() -> int:
        try:
            async with asyncio.timeout(args.timeout_s):
                return await run(args.count, args.seed, args.connections)
        except TimeoutError:
            print(f"FAILED: an answer or the queue's end did not come in {args.timeout_s} s")
            return 1

    sys.exit(asyncio.run(bounded()))


if __name__ == "__main__":
    main()
