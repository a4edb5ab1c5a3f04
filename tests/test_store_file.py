"""The store file deleted, replaced or made read-only under a running engine (SQLite).

From the next commit group no message gets AA (AE: not stored, resend), `/readyz` turns 503
and says why; a file deleted or replaced is written back from the still-open database, so a
SIGKILL right after and a restart find every acknowledged message.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from engine.mllp.client import MllpClient
from tests.delivery.harness import eventually
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt

pytestmark = pytest.mark.system

AA = b"MSA|AA|"
AE = b"MSA|AE|"


def engine_config(folder: Path) -> Path:
    config = folder / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\nlog_format = "json"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{folder / "outbox"}"\n',
        encoding="utf-8",
    )
    return config


def stored(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT control_id FROM messages ORDER BY id")]


def tables_set_aside(folder: Path) -> list[tuple[str]]:
    """The tables of the one file moved aside from the store's path."""
    (aside,) = folder.glob("engine.db.replaced-*")
    with sqlite3.connect(aside) as db:
        return db.execute("SELECT name FROM sqlite_schema").fetchall()


async def readiness(engine: EngineProcess) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(engine.http_address() + "/readyz") as answer,
    ):
        return answer.status, json.loads(await answer.text())


async def send(engine: EngineProcess, control_ids: list[str]) -> list[bytes]:
    client = await MllpClient.connect(*engine.address("adt"))
    try:
        return [await client.exchange(adt(control_id), 10) for control_id in control_ids]
    finally:
        await client.close()


async def acknowledged_then_lost_file(tmp_path: Path, lose: str) -> None:
    """100 messages AA, then `lose` happens to the file: AE, 503, written back; SIGKILL,
    restart: all 100 are there and the refused one can be sent again."""
    database = tmp_path / "engine.db"
    engine = EngineProcess(engine_config(tmp_path))
    await engine.start()
    sent = [f"F{n:03d}" for n in range(100)]
    assert all(AA in ack for ack in await send(engine, sent))
    if lose == "deleted":
        for name in ("engine.db", "engine.db-wal", "engine.db-shm"):  # rm engine.db*
            os.unlink(tmp_path / name)
    else:
        other = tmp_path / "other.db"
        with sqlite3.connect(other) as db:
            db.execute("CREATE TABLE theirs (x)")
        os.rename(other, database)
    (refused,) = await send(engine, ["F-after"])  # the very next group already knows
    assert AE in refused and b"not stored, resend" in refused

    async def written_back() -> bool:
        return bool(engine.logged("store file written back: restart the engine"))

    await eventually(written_back, timeout_s=5)
    status, body = await readiness(engine)
    assert status == 503
    assert body["store"] == (
        f"store file {lose} under the engine: written back to its path, restart the engine"
    )
    engine.kill()
    assert stored(database) == sent
    assert oct(database.stat().st_mode & 0o777) == "0o600"
    if lose == "replaced":
        assert tables_set_aside(tmp_path) == [("theirs",)]  # the file put in its place
    await engine.start()
    assert all(AA in ack for ack in await send(engine, ["F-after", "F100"]))
    assert await engine.terminate() == 0
    assert stored(database) == [*sent, "F-after", "F100"]


async def test_a_deleted_store_file_is_written_back_and_survives_sigkill(tmp_path: Path) -> None:
    await acknowledged_then_lost_file(tmp_path, "deleted")


async def test_a_replaced_store_file_is_put_aside_and_the_store_written_back(
    tmp_path: Path,
) -> None:
    await acknowledged_then_lost_file(tmp_path, "replaced")


async def test_a_read_only_store_file_refuses_messages_until_writable_again(
    tmp_path: Path,
) -> None:
    database = tmp_path / "engine.db"
    engine = EngineProcess(engine_config(tmp_path))
    await engine.start()
    assert all(AA in ack for ack in await send(engine, ["R1", "R2"]))
    database.chmod(0o400)
    (refused,) = await send(engine, ["R3"])
    assert AE in refused
    status, body = await readiness(engine)
    assert (status, body["store"]) == (
        503,
        "store file read-only: writes refused until it is writable",
    )
    database.chmod(0o600)
    assert all(AA in ack for ack in await send(engine, ["R3", "R4"]))
    assert (await readiness(engine))[0] == 200
    engine.kill()
    assert stored(database) == ["R1", "R2", "R3", "R4"]
