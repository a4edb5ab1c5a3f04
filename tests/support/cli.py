"""`ins-engine` called in this process, for the tests of what a command says and does: its
exit status and what it writes on stdout and stderr. A subprocess costs a Python start-up and
the command's imports (most of a second on a busy machine); the tests about the process
itself (the entry point, signals, a status as a shell sees it) still start one.

    ran = run_cli("check", "--config", path)          # Ran(status, out, err)
    ran = await run_beside("messages", "--config", path)  # from an async test

A command runs its own event loop (`asyncio.run`), so from an async test, whose loop runs the
engine under test, `run_beside` runs it on a worker thread: beside that engine, on a store
connection of its own, as the command does beside a running engine.
"""

from __future__ import annotations

import asyncio
import io
from contextlib import redirect_stderr, redirect_stdout
from typing import NamedTuple
from unittest import mock

from engine.cli import main


class Ran(NamedTuple):
    status: int
    out: str
    err: str


def run_cli(*args: str, stdin: str = "") -> Ran:
    """`ins-engine ARGS` with `stdin` as its (non-terminal) standard input. A usage error
    (argparse's SystemExit) is a status as from the process; any other exception escapes
    and fails the test, where a subprocess would print a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), mock.patch("sys.stdin", io.StringIO(stdin)):
        try:
            status = main(args)
        except SystemExit as exit:
            assert exit.code is None or isinstance(exit.code, int), exit.code
            status = exit.code or 0
    return Ran(status, out.getvalue(), err.getvalue())


async def run_beside(*args: str, stdin: str = "") -> Ran:
    """`run_cli` on a worker thread, while the test's loop keeps serving its engine."""
    return await asyncio.to_thread(run_cli, *args, stdin=stdin)
