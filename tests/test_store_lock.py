"""One engine per SQLite store: a second engine is refused with the store and the first
engine's PID, whatever name (a symbolic link, a hard link) it reaches the file by; operator
commands keep working beside the running engine."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.store.lock import Holder, StoreInUse, holder
from engine.store.sqlite import SqliteStore
from tests.support.cli import run_beside
from tests.support.engine_process import REPOSITORY, EngineProcess

pytestmark = pytest.mark.system


async def test_a_second_exclusive_open_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    database = str(tmp_path / "engine.db")
    assert holder(database) is None
    first = await SqliteStore.open(database, exclusive=True)
    assert holder(database) == Holder(os.getpid())
    with pytest.raises(StoreInUse) as refused:
        await SqliteStore.open(database, exclusive=True)
    assert refused.value.pid == os.getpid()
    assert database in str(refused.value) and f"PID {os.getpid()}" in str(refused.value)
    beside = await SqliteStore.open(database)  # what `queue` and `report` do
    assert await beside.queue_status() == []
    await beside.close()
    await first.close()
    assert holder(database) is None
    second = await SqliteStore.open(database, exclusive=True)
    await second.close()


def _command(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args, "--config", str(config)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=30,  # an engine that wrongly starts never exits: fail, do not hang
    )


def _config(tmp_path: Path, name: str, store: Path) -> Path:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{store}"\nlog_format = "json"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / name}"\n',
        encoding="utf-8",
    )
    return config


async def test_a_second_engine_on_the_same_store_exits_2_naming_the_store_and_pid(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, "engine", tmp_path / "engine.db")
    async with EngineProcess(config) as first:
        second = await asyncio.to_thread(_command, config, "run")
        assert second.returncode == 2, second.stderr
        assert (
            f"the store {tmp_path / 'engine.db'} is in use by another engine (PID {first.pid})"
            in second.stderr
        )
        assert "Traceback" not in second.stderr
        assert first.running
        # The operator commands, in this process: another process than the engine's still.
        status = await run_beside("queue", "status", "--config", str(config))
        assert status.status == 0, status.err
        assert f"running (PID {first.pid})" in status.out
        listing = await run_beside("queue", "list", "--config", str(config))
        assert listing.status == 0, listing.err
        out = str(tmp_path / "identities.csv")
        report = await run_beside("report", "identities", "--out", out, "--config", str(config))
        assert report.status == 0, report.err


@pytest.mark.parametrize("link", [os.symlink, os.link], ids=["symbolic link", "hard link"])
async def test_a_second_engine_reaching_the_store_by_another_name_exits_2(
    tmp_path: Path, link: Callable[[Path, Path], None]
) -> None:
    """Each name of the file is the same store: a hard link would otherwise give the second
    engine a WAL of its own and corrupt the file."""
    database = tmp_path / "engine.db"
    async with EngineProcess(_config(tmp_path, "engine", database)) as first:
        other_name = tmp_path / "elsewhere" / "other.db"
        other_name.parent.mkdir()
        link(database, other_name)
        second = await asyncio.to_thread(_command, _config(tmp_path, "second", other_name), "run")
        assert second.returncode == 2, second.stderr
        assert (
            f"the store {other_name} is in use by another engine (PID {first.pid})" in second.stderr
        )
        assert "Traceback" not in second.stderr
        assert first.running
        assert not (tmp_path / "elsewhere" / "other.db-wal").exists()  # refused before opening
