"""Reloading a running engine (`ins-engine reload`, SIGHUP) on an `ins-engine run`
subprocess: routes added, changed and removed apply without a restart, a connection open on
an unchanged route keeps working across it, and a configuration that fails `check` (or
changes what only a restart can) keeps the running routes and is reported: the command's
answer, the log, `/metrics`."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiohttp
import pytest

from engine.mllp.client import MllpClient, MllpClientError
from engine.testing.receiver import Receiver
from tests.support.cli import Ran, run_beside
from tests.support.engine_process import EngineProcess
from tests.support.messages import adt
from tests.support.metrics import value
from tests.support.waiting import until

pytestmark = pytest.mark.system


def engine_file(folder: Path, processes: int) -> Path:
    config = folder / "engine.toml"
    config.write_text(
        'route_files = ["*.route.toml"]\n\n'
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\nlog_format = "json"\n'
        f"processes = {processes}\n\n"
        '[http]\nlisten = "127.0.0.1:0"\n',
        encoding="utf-8",
    )
    return config


HOSTS = {
    "adt": 1,
    "kept": 1,
    "gone": 2,
    "moved": 3,
    "added": 4,
    "retuned": 5,
}  # 127.0.0.N: any port


def route_file(folder: Path, name: str, destination: str, keys: str = "") -> None:
    (folder / f"{name}.route.toml").write_text(
        f'name = "{name}"\nlisten = "127.0.0.{HOSTS[name]}:0"\nenrich = false\n{keys}\n'
        f"[[destinations]]\n{destination}\n",
        encoding="utf-8",
    )


def to_folder(folder: Path, name: str) -> str:
    return f'name = "archive"\nfile = "{folder / name}"'


def to_receiver(receiver: Receiver) -> str:
    return f'name = "downstream"\nmllp = "{receiver.address}"'


async def command(config: Path, *args: str) -> Ran:
    """`ins-engine ARGS`, in this process beside the engine's (tests/support/cli.py): it
    finds the engine in the store and signals its PID, as from a shell."""
    return await run_beside(*args, "--config", str(config))


async def exchange(client: MllpClient, control_id: str) -> bytes:
    return await client.exchange(adt(control_id), ack_timeout_s=30)


async def send(address: tuple[str, int], control_id: str) -> bytes:
    client = await MllpClient.connect(*address)
    try:
        return await exchange(client, control_id)
    finally:
        await client.close()


async def metrics_of(engine: EngineProcess) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{engine.http_address()}/metrics") as answer,
    ):
        return await answer.text()


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "delivery-process"])
async def test_reload_adds_changes_and_removes_routes_without_a_restart(
    tmp_path: Path, processes: int
) -> None:
    async with Receiver() as before, Receiver() as after, Receiver() as closed:
        nowhere = closed.address
        await closed.close()  # nobody listens there: what is sent to it waits
        stuck = f'\n[[destinations]]\nname = "stuck"\nmllp = "{nowhere}"'
        config = engine_file(tmp_path, processes)
        route_file(tmp_path, "kept", to_folder(tmp_path, "kept"))
        route_file(tmp_path, "gone", to_folder(tmp_path, "gone"))
        route_file(tmp_path, "moved", to_receiver(before) + stuck)
        route_file(tmp_path, "retuned", to_folder(tmp_path, "retuned"))
        async with EngineProcess(config) as engine:
            kept = await MllpClient.connect(*engine.address("kept"))
            assert b"MSA|AA|KEPT1" in await exchange(kept, "KEPT1")
            gone = engine.address("gone")
            assert b"MSA|AA|MOVED1" in await send(engine.address("moved"), "MOVED1")
            await before.wait_for(1)

            (tmp_path / "gone.route.toml").unlink()
            route_file(tmp_path, "added", to_folder(tmp_path, "added"))
            route_file(tmp_path, "moved", to_receiver(after))
            # A listener setting changed: that route's listener is replaced, on its address.
            route_file(tmp_path, "retuned", to_folder(tmp_path, "retuned"), "max_connections = 8")
            result = await command(config, "reload")

            assert result.status == 0, result.err
            assert "reloaded (added added; changed moved, retuned; removed gone)" in result.out
            assert b"MSA|AA|ADDED1" in await send(engine.address("added"), "ADDED1")
            assert b"MSA|AA|RETUNED1" in await send(engine.address("retuned"), "RETUNED1")
            with pytest.raises(MllpClientError, match="failed"):
                await send(gone, "GONE1")
            # The connection opened before the reload carries on, on the same socket.
            assert b"MSA|AA|KEPT2" in await exchange(kept, "KEPT2")
            await kept.close()
            assert b"MSA|AA|MOVED2" in await send(engine.address("moved"), "MOVED2")
            await after.wait_for(1)
            assert after.control_ids == ["MOVED2"]
            assert before.control_ids == ["MOVED1"]
            # A removed destination's entries stay in the store, shown, not delivered.
            status = json.loads((await command(config, "queue", "status", "--json")).out)
            queues = {(queue["route"], queue["destination"]): queue for queue in status["queues"]}
            assert queues["moved", "stuck"]["pending"] == 1
            await until(lambda: len(list((tmp_path / "kept").iterdir())) == 2)
            await until(lambda: len(list((tmp_path / "added").iterdir())) == 1)

            reloaded = engine.logged("configuration reloaded")
            assert reloaded[-1]["added"] == ["added"] and reloaded[-1]["removed"] == ["gone"]
            text = await metrics_of(engine)
            assert value(text, "ins_engine_config_reloads_total", outcome="applied") == 1
            assert value(text, "ins_engine_config_last_reload_successful") == 1


async def test_a_broken_route_file_keeps_the_running_routes_and_says_why(
    tmp_path: Path,
) -> None:
    config = engine_file(tmp_path, 1)
    route_file(tmp_path, "adt", to_folder(tmp_path, "adt"))
    async with EngineProcess(config) as engine:
        address = engine.address("adt")
        loaded_at = value(
            await metrics_of(engine), "ins_engine_config_last_reload_success_timestamp_seconds"
        )
        (tmp_path / "adt.route.toml").write_text(
            'name = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\nmax_connections = -1\n\n'
            f"[[destinations]]\n{to_folder(tmp_path, 'adt')}\n",
            encoding="utf-8",
        )
        engine.send_signal(signal.SIGHUP)  # as `systemctl reload` does
        await until(lambda: engine.logged("configuration reload refused"))
        reason = engine.logged("configuration reload refused")[0]["reason"]
        assert "adt.route.toml: max_connections" in reason
        assert b"MSA|AA|STILL1" in await send(address, "STILL1")
        text = await metrics_of(engine)
        assert value(text, "ins_engine_config_reloads_total", outcome="refused") == 1
        assert value(text, "ins_engine_config_last_reload_successful") == 0
        assert value(text, "ins_engine_config_last_reload_success_timestamp_seconds") == loaded_at

        result = await command(config, "reload")
        assert result.status == 2
        assert "adt.route.toml: max_connections" in result.err
        assert "not reloaded: the running engine keeps its configuration" in result.err


async def test_engine_wide_settings_are_refused_with_the_keys_named(tmp_path: Path) -> None:
    config = engine_file(tmp_path, 1)
    route_file(tmp_path, "adt", to_folder(tmp_path, "adt"))
    async with EngineProcess(config) as engine:
        address = engine.address("adt")
        text = config.read_text(encoding="utf-8").replace("processes = 1", "processes = 2")
        config.write_text(text.replace('log_format = "json"', 'log_format = "json"\nlease_s = 20'))
        result = await command(config, "reload")
        assert result.status == 1
        assert "refused, the running configuration is kept" in result.err
        assert "engine.lease_s, engine.processes: cannot change while the engine runs" in (
            result.err
        )
        assert b"MSA|AA|STILL1" in await send(address, "STILL1")
        assert engine.logged("configuration reload refused")
    stopped = await command(config, "reload")
    assert stopped.status == 2
    assert "ins-engine reload: no engine runs on the store" in stopped.err


async def test_sighup_no_longer_stops_the_engine(tmp_path: Path) -> None:
    config = engine_file(tmp_path, 1)
    route_file(tmp_path, "adt", to_folder(tmp_path, "adt"))
    async with EngineProcess(config) as engine:
        engine.send_signal(signal.SIGHUP)
        await until(lambda: engine.logged("configuration reloaded"))
        assert engine.logged("configuration reloaded")[0]["changed"] == []
        assert engine.running
        assert await engine.terminate() == 0
