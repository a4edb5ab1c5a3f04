"""A store that does not answer gets the sender a prompt AE, never a wait past its timeout.

The engine's PostgreSQL store goes through a proxy the test freezes (a partition: no error,
no answer). With `store_timeout_s = 0.5` a message sent meanwhile is answered AE well
within the sender's 8 s ACK timeout (before, the sender timed out: the commit waited for
TCP keepalives). Once the proxy thaws, the refused message is sent again until AA; a
SIGKILL then, and the store holds every acknowledged message, in order.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from engine.mllp.client import MllpClient
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.postgres import PASSWORD
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.system

SENDER_ACK_TIMEOUT_S = 8.0  # shorter than the 10 s the keepalives would take


def through(url: str, port: int) -> str:
    """The store URL, reached through the proxy's port."""
    return url.replace(f":{conninfo_to_dict(url)['port']}/", f":{port}/", 1)


def stored(url: str) -> list[str]:
    with psycopg.connect(url, password=PASSWORD) as db:
        rows = db.execute("SELECT control_id FROM messages ORDER BY id").fetchall()
    return [row[0] for row in rows]


async def test_a_frozen_database_gets_a_prompt_ae_and_loses_no_acknowledged_message(
    tmp_path: Path, postgres_url: str
) -> None:
    server = conninfo_to_dict(postgres_url)
    async with TcpProxy(str(server["host"]), int(str(server["port"]))) as proxy:
        config = tmp_path / "engine.toml"
        config.write_text(
            f'[engine]\nstore = "{through(postgres_url, proxy.port)}"\nlog_format = "json"\n'
            "store_timeout_s = 0.5\nprocesses = 1\n\n"
            '[http]\nlisten = "127.0.0.1:0"\n\n'
            '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n'
            f'[[routes.destinations]]\nname = "archive"\nfile = "{tmp_path / "outbox"}"\n',
            encoding="utf-8",
        )
        async with EngineProcess(config) as engine:
            client = await MllpClient.connect(*engine.address("adt"))
            before = [f"P{n:02d}" for n in range(20)]
            for control_id in before:
                assert b"MSA|AA|" in await client.exchange(adt(control_id), SENDER_ACK_TIMEOUT_S)

            proxy.freeze()
            refused = await client.exchange(adt("P-cut"), SENDER_ACK_TIMEOUT_S)
            assert b"MSA|AE|" in refused and b"not stored, resend" in refused
            async with (
                aiohttp.ClientSession() as session,
                session.get(engine.http_address() + "/readyz") as answer,
            ):
                body = json.loads(await answer.text())
            assert (answer.status, body["store"]) == (503, "not answering within 0.5 s")

            proxy.thaw()
            for _ in range(100):  # bounded: until the engine's connections flow again
                ack = await client.exchange(adt("P-cut"), SENDER_ACK_TIMEOUT_S)
                if b"MSA|AA|" in ack:
                    break
            assert b"MSA|AA|" in ack
            after = [f"Q{n:02d}" for n in range(20)]
            for control_id in after:
                assert b"MSA|AA|" in await client.exchange(adt(control_id), SENDER_ACK_TIMEOUT_S)
            engine.kill()
            await client.close()
    assert stored(postgres_url) == [*before, "P-cut", *after]
