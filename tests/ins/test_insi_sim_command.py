"""`ins-engine insi-sim`: option checks, and a real process answering then stopping cleanly."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from engine.commands import insi_sim
from engine.errors import CliError
from tests.ins.test_simulator import SOAP12, request

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    insi_sim.register(parser.add_subparsers())
    return parser.parse_args(["insi-sim", *argv])


@pytest.mark.parametrize(
    "argv",
    [
        ("--listen", "nowhere"),
        ("--tls-cert", "a.pem"),
        ("--client-ca", "ca.pem"),
        ("--fault-rate", "2"),
        ("--latency-ms", "-1"),
        ("--persons", "/nonexistent/persons.json"),
    ],
)
def test_usage_errors_say_what_to_fix(argv: tuple[str, ...]) -> None:
    args = parse(*argv)
    with pytest.raises(CliError):
        args.handler(args)


@pytest.mark.system
def test_the_command_serves_until_sigterm() -> None:
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "insi-sim",
            "--listen",
            "127.0.0.1:0",
            "--synthetic",
            "3",
            "--seed",
            "5",
            "--idam-allow",
            "IDAM-1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as process:
        try:
            assert process.stdout is not None
            ready = None
            for line in process.stdout:
                if "SIMULATOR ready" in line:
                    ready = json.loads(line)
                    break
            assert ready is not None and ready["count"] == 13 and ready["simulated"] is True
            response = httpx.post(
                ready["url"],
                content=request(idam="IDAM-1"),
                headers={"Content-Type": SOAP12},
                trust_env=False,
            )
            assert response.status_code == 200 and b"<CodeCR>00</CodeCR>" in response.content
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
