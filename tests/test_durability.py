"""An acknowledged message survives a crash: SIGKILL right after the ACK, then restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.mllp.client import MllpClient
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt

pytestmark = pytest.mark.system


def stored_control_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT control_id FROM messages ORDER BY id")]


async def test_message_acknowledged_then_sigkill_is_in_the_store_after_restart(
    tmp_path: Path,
) -> None:
    database = tmp_path / "engine.db"
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{database}"\nlog_format = "json"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / "outbox"}"\n',
        encoding="utf-8",
    )
    engine = EngineProcess(config)
    await engine.start()
    client = await MllpClient.connect(*engine.address("adt"))
    acks = [await client.exchange(adt(f"DUR{n}"), 10) for n in range(20)]
    engine.kill()  # no chance to flush anything: only committed data can remain
    await client.close()
    assert all(b"MSA|AA|" in ack for ack in acks)
    assert stored_control_ids(database) == [f"DUR{n}" for n in range(20)]
    assert oct(database.stat().st_mode & 0o777) == "0o600"
    await engine.start()
    client = await MllpClient.connect(*engine.address("adt"))
    again = await client.exchange(adt("DUR19"), 10)
    await client.close()
    assert again == acks[-1]  # still known after the restart: the original ACK, not a copy
    assert await engine.terminate() == 0
    assert stored_control_ids(database) == [f"DUR{n}" for n in range(20)]
