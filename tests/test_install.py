"""A plain install runs: the wheel alone, in a fresh virtualenv, serves and enriches a message;
and each `make` target installs only the extras it needs.

The wheel test is the slowest of the suite (a wheel build, a fresh virtualenv and pip
installing the runtime dependencies: about 30 s with a warm pip cache). It is marked
`install` so that it can be selected (`pytest -m install`), and it runs in CI like every
other test: an undeclared runtime import only shows in a fresh environment.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest

from tests.support.engine_process import REPOSITORY, EngineProcess
from tests.support.waiting import until

SAMPLE = REPOSITORY / "hl7_samples" / "01_a28_vali_found_nir.hl7"


def _run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=540,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, f"{command[:3]}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


@pytest.mark.system
def test_every_third_party_import_of_the_engine_is_a_declared_dependency() -> None:
    """Statically, so that an import on a rarely taken path (mutual TLS to INSi) counts too."""
    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text("utf-8"))["project"]
    declared = {
        re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in project["dependencies"]
    }
    distributions = importlib.metadata.packages_distributions()
    imported: dict[str, set[str]] = {}
    for source in (REPOSITORY / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "engine" and top not in sys.stdlib_module_names:
                    imported.setdefault(top, set()).add(source.name)
    undeclared = {
        module: sorted(files)
        for module, files in imported.items()
        if not {d.lower().replace("_", "-") for d in distributions.get(module, [module])} & declared
    }
    assert undeclared == {}


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of this checkout, built from a copy so the checkout gets no build folders."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    shutil.copytree(
        REPOSITORY / "engine", source / "engine", ignore=shutil.ignore_patterns("__pycache__")
    )
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("ins_engine-*.whl")
    return wheel


@pytest.mark.install
@pytest.mark.timeout(600)
async def test_the_wheel_alone_installs_an_engine_that_serves_and_enriches(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile", wheel)
    installed = venv / "bin" / "ins-engine"

    outbox = tmp_path / "outbox"
    config = tmp_path / "engine.toml"
    config.write_text(
        '[engine]\nstore = "sqlite:///var/engine.db"\nlog_format = "json"\n\n'
        "[insi]\nsimulator = true\n\n"
        '[http]\nlisten = "127.0.0.1:0"\nusers = "users.toml"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{outbox}"\n',
        encoding="utf-8",
    )
    _run(installed, "check", "--config", config, cwd=tmp_path)
    engine = EngineProcess(config, command=[str(installed)], cwd=tmp_path)
    await engine.start()
    try:
        host, port = engine.address("adt")
        replay = _run(installed, "replay", SAMPLE, "--to", f"{host}:{port}", "--json")
        assert json.loads(replay.stdout)["acks"]["AA"] == 1
        await until(lambda: list(outbox.glob("*.hl7")))
        (file,) = outbox.glob("*.hl7")
        # The in-process simulator answered through zeep's async transport: the INS was added.
        assert b"ASIP-SANTE-INS-NIR" in file.read_bytes()
        # The console's templates and static files are in the wheel.
        async with aiohttp.ClientSession(engine.http_address()) as session:
            for path, expected in (("/login", "Log in"), ("/static/htmx.min.js", "htmx")):
                async with session.get(path) as answer:
                    assert answer.status == 200, path
                    assert expected in await answer.text(), path
    finally:
        status = await engine.terminate()
    assert status == 0
    assert (tmp_path / "var" / "engine.db").is_file()  # relative to the configuration file


@pytest.mark.parametrize(
    ("target", "extras"),
    [
        ("run", ["."]),
        ("demo", ["."]),
        ("check", ["."]),
        ("test", [".[test]", "examples/phone-format", ".[docs]"]),  # example kind; docs
        ("test-fast", [".[test]", "examples/phone-format"]),
        ("bench", [".[bench]"]),
    ],
)
def test_each_make_target_installs_only_the_extras_it_needs(
    tmp_path: Path, target: str, extras: list[str]
) -> None:
    shown = _run("make", "-n", target, f"VENV={tmp_path / 'venv'}", cwd=REPOSITORY).stdout
    installs = [line for line in shown.splitlines() if " install " in line and " -e " in line]
    assert [line.split(" -e ")[1].split()[0].strip("'\"") for line in installs] == extras
