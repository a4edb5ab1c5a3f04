"""The sender over real loopback sockets: ACK codes, unknown outcomes, order, connections."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from engine.hl7.ack import AckCode
from engine.testing.receiver import Receiver
from engine.tools.replay.files import ReplayFile, expand_paths, load_file, load_files
from engine.tools.replay.sender import Failure, Result, Target, send_files
from tests.replay.conftest import SAMPLES, Answer, ack, answer_all, header_of
from tests.support.python_hl7 import python_hl7_receiver

Start = Callable[[Answer], Awaitable[Receiver]]
MSG = "MSH|^~\\&|APP|FAC|ENGINE|FAC|20240101||ADT^A28^ADT_A05|{}|P|2.5\rPID|||1^^^H^PI\r"


def replay_file(tmp_path: Path, name: str, *control_ids: str) -> ReplayFile:
    path = tmp_path / name
    path.write_text("".join(MSG.format(control_id) for control_id in control_ids))
    loaded = load_file(path)
    assert isinstance(loaded, ReplayFile)
    return loaded


async def replay(files: list[ReplayFile], port: int, **options: float) -> list[Result]:
    results: list[Result] = []
    await send_files(files, Target("127.0.0.1", port), results.append, **options)  # type: ignore[arg-type]
    return results


def outcomes(results: list[Result]) -> list[tuple[str, str]]:
    return [(r.message.control_id, r.outcome.value) for r in results]


async def test_every_message_acknowledged_in_file_order(tmp_path: Path, receiver: Start) -> None:
    server = await receiver(answer_all())
    files = [replay_file(tmp_path, "a", "A1", "A2", "A3"), replay_file(tmp_path, "b", "B1")]
    results = await replay(files, server.port)
    assert outcomes(results) == [("A1", "AA"), ("A2", "AA"), ("A3", "AA"), ("B1", "AA")]
    assert server.control_ids == ["A1", "A2", "A3", "B1"]
    assert all(r.latency_s is not None and r.latency_s >= 0 for r in results)
    assert server.connections == 1


async def test_bytes_arrive_as_read(receiver: Start) -> None:
    server = await receiver(answer_all())
    files, _ = load_files(expand_paths([str(SAMPLES)]))
    await replay(files, server.port, connections=4)
    sent = {m.control_id: m.payload for f in files for m in f.messages}
    assert {m.control_id: m.payload for m in server.received} == sent


@pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR", "CA"])
async def test_negative_acks_are_counted_and_the_file_goes_on(
    tmp_path: Path, receiver: Start, code: str
) -> None:
    def answer(payload: bytes) -> bytes:
        if header_of(payload).control_id == "X2":
            return ack(payload, code, "Unknown key identifier")
        return ack(payload)

    server = await receiver(answer)
    results = await replay([replay_file(tmp_path, "f", "X1", "X2", "X3")], server.port)
    assert outcomes(results) == [("X1", "AA"), ("X2", code), ("X3", "AA")]
    assert results[1].text == "Unknown key identifier"
    assert server.connections == 1


@pytest.mark.parametrize(
    ("bad_answer", "failure"),
    [
        (lambda payload: None, Failure.TIMEOUT),
        (lambda payload: ack(payload, control_id="SOMEONE-ELSE"), Failure.MISMATCH),
        (lambda payload: b"MSH|^~\\&|R|F|||20240101||ACK|1|P|2.5\r", Failure.INVALID_ACK),
        (lambda payload: ack(payload).replace(b"MSA|AA", b"MSA|ZZ"), Failure.INVALID_ACK),
        (lambda payload: b"not hl7 at all", Failure.INVALID_ACK),
    ],
    ids=["silent", "wrong-msa-2", "no-msa", "unknown-code", "garbage"],
)
async def test_unknown_outcome_closes_the_connection_and_stops_that_file(
    tmp_path: Path, receiver: Start, bad_answer: Answer, failure: Failure
) -> None:
    def answer(payload: bytes) -> bytes | None:
        if header_of(payload).control_id == "X2":
            return bad_answer(payload)
        return ack(payload)

    server = await receiver(answer)
    files = [replay_file(tmp_path, "f", "X1", "X2", "X3"), replay_file(tmp_path, "g", "Y1")]
    # X1's and Y1's ACKs must come within the timeout too: a bound the loaded machine meets.
    results = await replay(files, server.port, ack_timeout_s=2.0)
    assert outcomes(results) == [
        ("X1", "AA"),
        ("X2", failure.value),
        ("X3", "not_sent"),
        ("Y1", "AA"),
    ]
    assert results[2].text == "message 2 of this file got no usable ACK"
    # Y1 went on a new connection: a late answer to X2 can never be read as Y1's.
    assert [(m.connection, m.control_id) for m in server.received] == [
        (1, "X1"),
        (1, "X2"),
        (2, "Y1"),
    ]


async def test_peer_closing_mid_file_is_a_connection_error(tmp_path: Path, receiver: Start) -> None:
    def answer(payload: bytes) -> bytes:
        if header_of(payload).control_id == "X2":
            raise ConnectionResetError  # the receiver drops the connection
        return ack(payload)

    server = await receiver(answer)
    results = await replay([replay_file(tmp_path, "f", "X1", "X2", "X3")], server.port)
    assert outcomes(results) == [("X1", "AA"), ("X2", "connection_error"), ("X3", "not_sent")]


async def test_unreachable_receiver_stops_the_run_and_sends_nothing(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        files = [replay_file(tmp_path, "f", "X1", "X2"), replay_file(tmp_path, "g", "Y1")]
        results = await replay(files, port, connections=2)
    assert sorted(outcomes(results)) == [("X1", "not_sent"), ("X2", "not_sent"), ("Y1", "not_sent")]
    assert all("connect to 127.0.0.1" in r.text for r in results)


async def test_three_connections_keep_order_within_each_file(
    tmp_path: Path, receiver: Start
) -> None:
    server = await receiver(answer_all())
    files = [replay_file(tmp_path, f"f{n}", *(f"F{n}-{i}" for i in range(1, 6))) for n in range(7)]
    results = await replay(files, server.port, connections=3)
    assert len(results) == 35
    assert {r.outcome for r in results} == {AckCode.AA}
    assert server.connections == 3
    for n in range(7):
        arrivals = [
            (m.connection, m.control_id)
            for m in server.received
            if m.control_id.startswith(f"F{n}-")
        ]
        assert [cid for _, cid in arrivals] == [f"F{n}-{i}" for i in range(1, 6)]
        assert len({c for c, _ in arrivals}) == 1  # a whole file on one connection


async def test_python_hl7_receiver_acks_the_whole_corpus() -> None:
    async with python_hl7_receiver() as receiver:
        files, problems = load_files(expand_paths([str(SAMPLES)]))
        assert problems == []
        results = await replay(files, receiver.port, connections=2)
    expected = [m.control_id for f in files for m in f.messages]
    assert sorted(receiver.control_ids) == sorted(expected)
    assert [r.outcome for r in results] == [AckCode.AA] * len(expected)
