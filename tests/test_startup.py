"""Start-up problems: `check` finds everything `run` would fail on and prints all of it; `run`
names the key and the path, exits 2 and never shows a traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from tests.support.engine_process import REPOSITORY
from tests.support.unprivileged import drop_root_file_override

pytestmark = pytest.mark.system

DESTINATION = '[[routes.destinations]]\nname = "archive"\nfile = "outbox"\n'


def write(folder: Path, text: str) -> Path:
    config = folder / "engine.toml"
    config.write_text(text, encoding="utf-8")
    return config


def command(
    config: Path, *args: str, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args, "--config", str(config)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=drop_root_file_override if unprivileged else None,
    )


def every_problem(tmp_path: Path) -> Path:
    """A file the loader accepts, on a machine where `run` cannot start it."""
    (tmp_path / "afile").write_text("a file where a folder should be")
    return write(
        tmp_path,
        '[engine]\nstore = "sqlite:///afile/engine.db"\n\n'
        '[insi]\nurl = "https://insi.example/lps"\nsimulator = false\nidam = "IDAM"\n'
        'cert = "certs/insi.pem"\nkey = "certs/insi.key"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        '[routes.tls]\ncert = "certs/server.pem"\nkey = "certs/server.key"\n'
        + DESTINATION
        + '[[routes]]\nname = "lab"\nlisten = "127.0.0.1:1"\nenrich = false\n',
    )


EXPECTED = [
    "engine.store: {tmp}/afile is a file, not a folder: cannot create {tmp}/afile",
    "insi.cert: {tmp}/certs/insi.pem: no such file",
    "insi.key: {tmp}/certs/insi.key: no such file",
    "routes[0].tls.cert: {tmp}/certs/server.pem: no such file",
    "routes[0].tls.key: {tmp}/certs/server.key: no such file",
    "routes[1].destinations: at least one destination: without one, messages are "
    "acknowledged and then dropped",
]


@pytest.mark.parametrize("name", ["check", "run"])
def test_check_and_run_print_every_start_up_problem_and_exit_2(tmp_path: Path, name: str) -> None:
    config = every_problem(tmp_path)
    result = command(config, name)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"ins-engine {name}: {config}: " + line.format(tmp=tmp_path) for line in EXPECTED
    ]
    assert result.stdout == ""


def test_a_pkcs12_bundle_without_its_password_variable_is_found_by_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "insi.p12").write_bytes(b"not read before the password is known")
    monkeypatch.delenv("INS_ENGINE_PKCS12_PASSWORD", raising=False)
    config = write(
        tmp_path,
        '[insi]\nurl = "https://insi.example/lps"\nsimulator = false\nidam = "IDAM"\n'
        'pkcs12 = "insi.p12"\n\n[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n' + DESTINATION,
    )
    assert main(["check", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        f"ins-engine check: {config}: insi.pkcs12_password_env: set the PKCS#12 password in "
        "the environment variable INS_ENGINE_PKCS12_PASSWORD\n"
    )


def test_folders_the_engine_cannot_write_are_found_by_check(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    config = write(
        tmp_path,
        '[engine]\nstore = "sqlite:///locked/var/engine.db"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        '[[routes.destinations]]\nname = "archive"\nfile = "locked"\n',
    )
    result = command(config, "check", unprivileged=True)
    assert result.returncode == 2, result.stdout
    assert result.stderr.splitlines() == [
        f"ins-engine check: {config}: engine.store: {locked} is not writable by this user "
        f"(to create {locked / 'var'})",
        f"ins-engine check: {config}: routes[0].destinations[0].file: {locked} is not "
        "writable by this user",
    ]


def test_a_listen_address_in_use_names_the_key_and_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write(
            tmp_path,
            f'[[routes]]\nname = "adt"\nlisten = "127.0.0.1:{port}"\nenrich = false\n'
            + DESTINATION,
        )
        result = command(config, "run")
    assert result.returncode == 2
    assert result.stderr.endswith(
        f"ins-engine run: {config}: routes[0].listen: cannot listen on 127.0.0.1:{port} "
        "(Address already in use): is another program (or engine) listening there?\n"
    )
    assert "Traceback" not in result.stderr


def test_a_closed_pipe_ends_the_output_quietly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "check", "--keys"],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head` does once it has what it wants
    with process.stderr:
        assert process.stderr.read() == b""
    assert process.wait(timeout=30) == 128 + signal.SIGPIPE
