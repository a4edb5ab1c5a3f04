"""`make demo` end to end: demo/run.py on demo/route.toml (moved to a temporary folder) runs a
real engine on the corpus, exits 0, and shows the outcome counts expectations.toml predicts,
that INSi was SIMULATED, and no patient name or full matricule."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.replay.corpus import EXPECTATIONS, patient_strings
from tests.support.engine_process import REPOSITORY

pytestmark = pytest.mark.system

DEMO_ROUTE = REPOSITORY / "demo" / "route.toml"


def demo_config(folder: Path) -> Path:
    """demo/route.toml with its store and outbox in `folder` instead of var/demo/."""
    text = DEMO_ROUTE.read_text(encoding="utf-8")
    moved = text.replace('"sqlite:///../var/demo/', f'"sqlite:///{folder}/').replace(
        '"../var/demo/', f'"{folder}/'
    )
    assert moved.count(str(folder)) == 2, "demo/route.toml names its store and outbox"
    config = folder / "route.toml"
    config.write_text(moved, encoding="utf-8")
    return config


def run_demo(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "demo.run", "--config", str(config)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_shows_what_the_engine_did_and_runs_again(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    assert run_demo(config).returncode == 0
    again = run_demo(config)  # a second run starts from nothing, as `make demo` twice does

    assert again.returncode == 0, again.stderr
    out = again.stdout
    assert "INSi was SIMULATED" in out
    for outcome, count in Counter(str(entry["outcome"]) for entry in EXPECTATIONS).items():
        assert re.search(rf"^\s*{outcome}\s+{count}\s", out, re.MULTILINE), outcome
    assert re.search(rf"^\s*total\s+{len(EXPECTATIONS)}\s", out, re.MULTILINE)
    assert all(str(entry["control_id"]) in out for entry in EXPECTATIONS)
    # At 120 columns (not a terminal) the INS column, the last, is shown whole.
    ends = re.findall(r"(?:NIR|NIA) …(\S*)", out)
    assert ends and all(re.fullmatch(r"[0-9A-Z]{4}", end) for end in ends), ends
    shown = out + again.stderr
    assert sorted(text for text in patient_strings() if text in shown) == []


def test_demo_never_empties_a_store_it_did_not_make(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    store = tmp_path / "demo.db"
    store.write_bytes(b"someone else's messages")

    result = run_demo(config)

    assert result.returncode == 1
    assert "the demo did not make" in result.stderr
    assert store.read_bytes() == b"someone else's messages"
