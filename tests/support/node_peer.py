"""Starting a Node test peer of tests/peers/ (an npm package installed by `make peers`): a
subprocess on loopback that prints `listening HOST:PORT` once it serves, and exits when its
standard input closes (with the test process, whatever ends it)."""

from __future__ import annotations

import contextlib
import selectors
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

START_GUARD_S = 60.0  # a hang guard, not a speed assertion


class Unavailable(RuntimeError):
    """`node` is not installed here."""


def start_node_peer(
    folder: Path, arguments: list[str], package: str, what: str
) -> tuple[subprocess.Popen[bytes], str, int]:
    """Run `node ARGUMENTS` in `folder`, whose npm `package` must be installed; the process
    and the address it listens on."""
    node = shutil.which("node")
    if node is None:
        raise Unavailable("node is not installed: apt-get install nodejs npm")
    if not (folder / "node_modules" / package / "package.json").exists():
        raise RuntimeError(f"the {what}'s packages are not installed in {folder}: run `make peers`")
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: it never fills
        process = subprocess.Popen(
            [node, *arguments, "--exit-with-stdin"],
            cwd=folder,
            stdin=subprocess.PIPE,  # closed by the caller's stop(), or by the end of this process
            stdout=subprocess.PIPE,
            stderr=log,  # the child keeps its own descriptor
        )
        try:
            host, port = _ready_line(process, what)
        except BaseException as failed:
            process.kill()
            process.wait()
            log.seek(0)
            failed.add_note(log.read().decode(errors="replace")[-2000:])
            raise
    return process, host, port


def stop_node_peer(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _ready_line(process: subprocess.Popen[bytes], what: str) -> tuple[str, int]:
    """Read stdout until `listening HOST:PORT`; fail if the peer exits first."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_GUARD_S
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"the {what} did not start in {START_GUARD_S} s")
            if not selector.select(remaining):
                continue
            chunk = process.stdout.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                process.wait()
                raise RuntimeError(f"the {what} exited ({process.returncode})")
            buffer += chunk
    line = buffer.split(b"\n", 1)[0].decode()
    word, _, address = line.partition(" ")
    if word != "listening":
        raise RuntimeError(f"unexpected first line from the {what}: {line!r}")
    host, _, port = address.rpartition(":")
    return host, int(port)
