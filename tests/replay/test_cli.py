"""`ins-engine replay` end to end: exit codes, --dry-run, --json, TLS, and what is shown."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import trustme

from engine import cli
from engine.testing.receiver import Receiver
from engine.tools.replay.files import expand_paths, load_files
from tests.replay.conftest import SAMPLES, ack, answer_all, header_of
from tests.support.cli import run_cli

StartThread = Callable[..., Receiver]
MSG = (
    "MSH|^~\\&|APP|FAC|ENGINE|FAC|20240101||ADT^A28^ADT_A05|{}|P|2.5\r"
    "PID|||1||DUPONT^JEAN^JEAN^^^^L||19800101|M\r"
)
ALLOWED_LOG_KEYS = {
    "event", "level", "logger", "timestamp", "control_id", "message_type", "size", "duration_ms",
    "outcome", "code", "count", "error", "peer",
}  # fmt: skip
REGISTERED = cli.COMMAND_MODULES
CORPUS_COUNT = sum(len(f.messages) for f in load_files(expand_paths([str(SAMPLES)]))[0])


@pytest.fixture(autouse=True)
def only_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real CLI entry point, with only this command registered (others have their own
    tests and dependencies), and tables wide enough not to fold what the tests look for."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("engine.commands.replay",))
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The command configures logging for the process; put it back for the next tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def run(*args: str) -> int:
    return cli.main(["replay", *args])


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    status = run(*args, "--json")
    return status, json.loads(capsys.readouterr().out)


def write_file(tmp_path: Path, name: str, *control_ids: str) -> str:
    path = tmp_path / name
    path.write_text("".join(MSG.format(control_id) for control_id in control_ids))
    return str(path)


def test_replay_is_registered() -> None:
    assert "engine.commands.replay" in REGISTERED


def test_corpus_replayed_all_accepted(
    receiver_thread: StartThread, capsys: pytest.CaptureFixture[str]
) -> None:
    server = receiver_thread(answer_all())
    status, summary = run_json(capsys, str(SAMPLES), "--to", f"127.0.0.1:{server.port}")
    assert status == 0
    assert summary["messages"] == summary["sent"] == CORPUS_COUNT >= 30
    assert summary["acks"] == {"AA": CORPUS_COUNT, "AE": 0, "AR": 0, "CA": 0, "CE": 0, "CR": 0}
    assert summary["not_accepted"] == summary["unreadable_files"] == []
    assert len(server.received) == CORPUS_COUNT


def test_json_shape(
    receiver_thread: StartThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def answer(payload: bytes) -> bytes | None:
        control_id = header_of(payload).control_id
        return None if control_id == "S1" else ack(payload, "AR" if control_id == "R1" else "AA")

    server = receiver_thread(answer)
    rejected = write_file(tmp_path, "rejected.hl7", "A1", "R1")
    silent = write_file(tmp_path, "silent.hl7", "S1", "S2")
    empty = write_file(tmp_path, "empty.hl7")
    status, summary = run_json(
        capsys, rejected, silent, empty, "--to", f"localhost:{server.port}", "--ack-timeout", "0.3"
    )
    assert status == 1
    assert set(summary) == {
        "dry_run", "files", "messages", "sent", "acks", "failures", "not_sent", "duration_s",
        "messages_per_s", "latency_ms", "not_accepted", "not_sent_files", "unreadable_files",
        "files_refused",
    }  # fmt: skip
    assert (summary["files"], summary["messages"], summary["sent"]) == (2, 4, 3)
    assert (summary["acks"]["AA"], summary["acks"]["AR"]) == (1, 1)
    assert summary["failures"] == {
        "timeout": 1, "mismatch": 0, "invalid_ack": 0, "connection_error": 0,
    }  # fmt: skip
    assert summary["not_sent"] == 1
    assert set(summary["latency_ms"]) == {"p50", "p99"}
    assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p99"]
    listed = [
        (r["file"], r["position"], r["control_id"], r["outcome"]) for r in summary["not_accepted"]
    ]
    assert listed == [(rejected, 2, "R1", "AR"), (silent, 1, "S1", "timeout")]
    assert summary["not_sent_files"] == [
        {
            "file": silent,
            "from_position": 2,
            "count": 1,
            "reason": "message 1 of this file got no usable ACK",
        }
    ]
    assert summary["unreadable_files"] == [
        {"file": empty, "reason": "no HL7 message (no line starting with MSH)"}
    ]


def test_unreadable_file_is_not_sent_and_fails_the_run(
    receiver_thread: StartThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = receiver_thread(answer_all())
    good = write_file(tmp_path, "good.hl7", "G1")
    bad = tmp_path / "bad.hl7"
    bad.write_text(MSG.format("B1") + MSG.format(""))  # second message has no MSH-10
    assert run(good, str(bad), "--to", f"127.0.0.1:{server.port}") == 1
    assert server.control_ids == ["G1"]
    out = capsys.readouterr().out
    assert "bad.hl7" in out
    assert "message 2: MSH-10" in out


def test_dry_run_reads_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    status, summary = run_json(capsys, str(SAMPLES), "--dry-run")
    assert status == 0
    assert summary["dry_run"] is True
    assert (summary["messages"], summary["sent"]) == (CORPUS_COUNT, 0)
    assert run(str(SAMPLES), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "nothing sent" in out
    assert "29_capture_back_to_back.mllp" in out


def test_dry_run_fails_on_an_unreadable_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a message")
    status, summary = run_json(capsys, str(tmp_path), "--dry-run")
    assert status == 1
    assert summary["unreadable_files"][0]["file"].endswith("notes.txt")


def test_human_summary_names_messages_never_patients(
    receiver_thread: StartThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = receiver_thread(lambda payload: ack(payload, "AE", "Required field missing"))
    status = run(write_file(tmp_path, "f.hl7", "E1"), "--to", f"127.0.0.1:{server.port}")
    assert status == 1
    out, err = capsys.readouterr()
    for shown in ("f.hl7", "E1", "AE", "Required field missing", "FAILED"):
        assert shown in out
    logs = [json.loads(line) for line in err.splitlines()]  # not a terminal: JSON lines
    assert [entry["event"] for entry in logs] == ["replay.not_accepted"]
    for entry in logs:
        assert set(entry) <= ALLOWED_LOG_KEYS
    for text in (out, err):
        for patient_data in ("DUPONT", "JEAN", "19800101"):
            assert patient_data not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "localhost"), "expected HOST:PORT"),
        (("--to", "localhost:99999"), "expected HOST:PORT"),
        (("--to", "h:1", "--connections", "0"), "--connections must be at least 1"),
        (("--to", "h:1", "--rate", "0"), "--rate must be a positive"),
        (("--to", "h:1", "--ack-timeout", "-1"), "--ack-timeout must be a positive"),
        (("--to", "h:1", "--cert", "c.pem"), "need --tls"),
        (("--to", "h:1", "--tls", "--key", "k.pem"), "--cert: cert and key go together"),
        (("--to", "h:1", "--tls", "--cert", "c.pem"), "--key: cert and key go together"),
        (("--to", "h:1", "--tls", "--ca", "/nonexistent/ca.pem"), "TLS files: cannot load"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert run(write_file(tmp_path, "f.hl7", "X"), *args) == 2
    assert message in capsys.readouterr().err


def test_help_shows_that_a_receiver_or_a_dry_run_is_required() -> None:
    shown = run_cli("replay", "--help")
    assert shown.status == 0
    assert "(--to HOST:PORT | --dry-run)" in " ".join(shown.out.split())
    for args in ((), ("--to", "h:1", "--dry-run")):
        refused = run_cli("replay", "f.hl7", *args)
        assert refused.status == 2
        assert "--to" in refused.err.splitlines()[-1], args


def test_missing_path_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("/nonexistent/folder", "--dry-run") == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.fixture
def pki(tmp_path: Path) -> tuple[ssl.SSLContext, dict[str, str]]:
    """A receiver requiring a client certificate, and the files a client needs."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client = ca.issue_cert("replay-client")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "client.pem",
        "key": tmp_path / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    client.cert_chain_pems[0].write_to_path(str(files["cert"]))
    client.private_key_pem.write_to_path(str(files["key"]))
    return server_context, {name: str(path) for name, path in files.items()}


def test_mutual_tls(
    receiver_thread: StartThread,
    pki: tuple[ssl.SSLContext, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    server_context, files = pki
    server = receiver_thread(answer_all(), server_context)
    path = write_file(tmp_path, "f.hl7", "T1", "T2")
    target = ("--to", f"127.0.0.1:{server.port}", "--tls", "--ca", files["ca"])
    status, summary = run_json(
        capsys, path, *target, "--cert", files["cert"], "--key", files["key"]
    )
    assert (status, summary["acks"]["AA"]) == (0, 2)
    # Without a client certificate the receiver refuses: nothing is accepted.
    status, summary = run_json(capsys, path, *target)
    assert status == 1
    assert summary["acks"]["AA"] == 0
    assert server.control_ids == ["T1", "T2"]


def test_files_refused_are_counted_apart_from_the_messages_sent(
    receiver_thread: StartThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = receiver_thread(answer_all())
    write_file(tmp_path, "good.hl7", "G1")
    for number in range(5):
        (tmp_path / f"junk{number}.txt").write_text("not a message")
    assert run(str(tmp_path), "--to", f"127.0.0.1:{server.port}") == 1
    out = capsys.readouterr().out
    assert (
        "FAILED: 1 of 1 message(s) accepted, from 1 file(s) read; 5 file(s) refused, nothing "
        "of them sent (see Files not sent)" in out
    )
    status, summary = run_json(capsys, str(tmp_path), "--to", f"127.0.0.1:{server.port}")
    assert (status, summary["files_refused"], summary["acks"]["AA"]) == (1, 5, 1)


@pytest.fixture
def plain_listener() -> Iterator[int]:
    """A TCP server that accepts and never answers, as a plain MLLP listener does with the
    bytes of a TLS ClientHello."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    thread.join(5)
    for connection in accepted:
        connection.close()


def test_tls_to_a_plain_listener_says_the_handshake_failed(
    plain_listener: int, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_file(tmp_path, "f.hl7", "T1")
    target = ("--to", f"127.0.0.1:{plain_listener}", "--tls", "--connect-timeout", "0.3")
    status, summary = run_json(capsys, path, *target)
    assert status == 1
    (not_sent,) = summary["not_sent_files"]
    assert not_sent["reason"] == (
        f"TLS handshake with 127.0.0.1:{plain_listener} failed: no answer within 0.3 s "
        "(is the receiver serving TLS?)"
    )


def test_tls_to_a_receiver_that_hangs_up_says_the_handshake_failed(
    receiver_thread: StartThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = receiver_thread(answer_all())  # plain MLLP: it drops what is not a block
    path = write_file(tmp_path, "f.hl7", "T1")
    status, summary = run_json(capsys, path, "--to", f"127.0.0.1:{server.port}", "--tls")
    assert status == 1
    (not_sent,) = summary["not_sent_files"]
    assert not_sent["reason"].startswith(f"TLS handshake with 127.0.0.1:{server.port} failed: ")
