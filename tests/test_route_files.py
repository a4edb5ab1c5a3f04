"""Route files: an engine file names them by glob; each holds one route. Errors name the
route file and its key; a single file holding everything keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.app.runtime import Engine
from engine.cli import main
from engine.config.settings import load_config
from engine.mllp.client import MllpClient
from tests.conftest import fixed_acks
from tests.support.config_errors import config_error
from tests.support.messages import adt
from tests.support.waiting import until

ENGINE = 'route_files = ["routes.d/*.toml"]\n\n[engine]\nstore = "sqlite:///{store}"\n'
PAS = """name = "pas"
listen = "127.0.0.1:0"
accept = ["ADT^*"]

[[steps]]
kind = "set"
field = "MSH-5"
value = "EHR"

[[destinations]]
name = "ehr"
file = "../outbox/ehr"
"""
LAB = 'name = "lab"\nlisten = "127.0.0.1:0"\nenrich = false\n'


def layout(tmp_path: Path, **routes: str) -> Path:
    folder = tmp_path / "routes.d"
    folder.mkdir(exist_ok=True)
    for name, text in routes.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    engine = tmp_path / "engine.toml"
    engine.write_text(ENGINE.format(store=tmp_path / "engine.db"), encoding="utf-8")
    return engine


def test_routes_come_from_their_files_in_path_order(tmp_path: Path) -> None:
    config = load_config(layout(tmp_path, pas=PAS, lab=LAB.replace(":0", ":1")))
    assert [route.name for route in config.routes] == ["lab", "pas"]  # lab.toml, pas.toml
    pas = config.routes[1]
    assert pas.source == str(tmp_path / "routes.d" / "pas.toml")
    assert pas.destinations[0].file == str(tmp_path / "outbox" / "ehr")  # beside the file
    assert [step.kind for step in pas.step_list()] == ["set"]


@pytest.mark.parametrize(
    ("routes", "file", "key", "expected"),
    [
        ({"pas": "colour = 'red'\n" + PAS}, "pas.toml", "colour", "unknown key"),
        (
            {"pas": PAS.replace('"MSH-5"', '"MSH5"')},
            "pas.toml",
            "steps[0].field",
            "a field such as MSH-5",
        ),
        (
            {"a": LAB, "b": LAB.replace(":0", ":1")},
            "b.toml",
            "name",
            "unique (also in",
        ),
        ({"a": LAB, "b": LAB.replace("lab", "lab2")}, "b.toml", "listen", "no other route"),
        ({"pas": "[engine]\nstore = 'x'\n"}, "pas.toml", "engine", "unknown key"),
    ],
)
def test_errors_name_the_route_file_and_its_key(
    tmp_path: Path, routes: dict[str, str], file: str, key: str, expected: str
) -> None:
    error = config_error(layout(tmp_path, **routes))
    assert (Path(error.file).name, error.key) == (file, key)
    assert expected in error.expected


def test_a_pattern_matching_nothing_is_an_error(tmp_path: Path) -> None:
    engine = layout(tmp_path)
    error = config_error(engine)
    assert (error.file, error.key) == (str(engine), "route_files[0]")
    assert "none" in error.expected


def test_check_accepts_both_layouts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(layout(tmp_path, pas=PAS))]) == 0
    single = tmp_path / "single.toml"
    single.write_text(
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:2575"\n'
        '[[routes.destinations]]\nname = "d"\nfile = "out"\n',
        encoding="utf-8",
    )
    assert main(["check", "--config", str(single)]) == 0
    out = capsys.readouterr().out
    assert out.count("valid") == 2
    pas, ehr = tmp_path / "routes.d" / "pas.toml", tmp_path / "outbox" / "ehr"
    assert f"  route pas ({pas}): set\n    → ehr (file {ehr}): *\n" in out
    # One file: none named; the default step.
    assert f"  route adt: ins_enrich\n    → d (file {tmp_path / 'out'}): *\n" in out


def test_dropped_messages_are_listed_per_route_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = layout(tmp_path, pas=PAS)
    assert (
        main(["queue", "list", "--dropped", "--destination", "ehr", "--config", str(engine)]) == 2
    )
    assert "--destination does not apply" in capsys.readouterr().err


@pytest.mark.system
async def test_an_engine_runs_the_routes_of_its_files(tmp_path: Path) -> None:
    engine = Engine(load_config(layout(tmp_path, pas=PAS)), acks=fixed_acks())
    await engine.start()
    try:
        client = await MllpClient.connect(*engine.listeners["pas"].address)
        ack = await client.exchange(adt("RF1"), 5)
        await client.close()
        outbox = tmp_path / "outbox" / "ehr"
        await until(lambda: list(outbox.glob("*.hl7")))
    finally:
        await engine.stop()
    assert b"MSA|AA|RF1" in ack
    (delivered,) = outbox.glob("*.hl7")
    assert delivered.read_bytes() == adt("RF1").replace(b"|INS-ENGINE|", b"|EHR|")


def test_every_error_of_every_file_is_listed_each_in_its_file(tmp_path: Path) -> None:
    engine = layout(
        tmp_path,
        a=LAB + "colour = 'red'\n",
        b=PAS.replace('"MSH-5"', '"MSH5"').replace("pas", "b").replace(":0", ":1"),
    )
    engine.write_text(engine.read_text() + 'log_level = "loud"\n', encoding="utf-8")
    error = config_error(engine)
    assert [(Path(e.file).name, e.key) for e in error.errors] == [  # type: ignore[attr-defined]
        ("engine.toml", "engine.log_level"),
        ("a.toml", "colour"),
        ("b.toml", "steps[0].field"),
    ]
