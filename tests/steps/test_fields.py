"""The set, copy and map kinds, configured in a route file and run as the engine runs them
(the embedding API), and the errors `check` gives for their settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.embed import RouteRunner
from tests.support.config_errors import config_error

ROUTE = '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
DESTINATION = '[[routes.destinations]]\nname = "lis"\nfile = "out"\n'
MESSAGE = (
    b"MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240101||ADT^A01|C1|P|2.5\r"
    b"PID|1||IPP1^^^HOSP^PI||DOE^JOHN\r"
    b"PV1|1|I|CARDIO^101^B\r"
)
WARDS = "pas,lab\nCARDIO,CAR\nNEURO,NEU\n"


def config(tmp_path: Path, steps: str, wards: str = WARDS) -> Path:
    (tmp_path / "wards.csv").write_text(wards, encoding="utf-8")
    path = tmp_path / "engine.toml"
    path.write_text(ROUTE + steps + DESTINATION, encoding="utf-8")
    return path


async def run(path: Path, raw: bytes = MESSAGE) -> tuple[bytes | None, list[tuple[str, str, str]]]:
    async with await RouteRunner.open(path) as runner:
        processed = await runner.process(raw)
    decisions = [(d.step, d.outcome, d.detail) for d in processed.decisions]
    return processed.destinations.get("lis"), decisions


async def test_set_copy_and_map_write_their_value_and_nothing_else(tmp_path: Path) -> None:
    steps = (
        '[[routes.steps]]\nkind = "set"\nname = "receiver"\nfield = "MSH-5"\nvalue = "LIS^2"\n'
        '[[routes.steps]]\nkind = "copy"\nfield = "PV1-19"\nsource = "PID-3-1"\n'
        '[[routes.steps]]\nkind = "map"\nfield = "PV1-3-1"\ntable = "wards.csv"\n'
    )
    delivered, decisions = await run(config(tmp_path, steps))
    assert delivered == (
        b"MSH|^~\\&|PAS|HOSP|LIS\\S\\2|HOSP|20240101||ADT^A01|C1|P|2.5\r"
        b"PID|1||IPP1^^^HOSP^PI||DOE^JOHN\r"
        b"PV1|1|I|CAR^101^B||||||||||||||||IPP1\r"
    )
    assert decisions == [
        ("receiver", "set", "MSH-5"),
        ("copy", "copied", "PV1-19"),
        ("map", "mapped", "PV1-3-1"),
    ]


@pytest.mark.parametrize(
    ("unmapped", "delivered", "decision"),
    [
        ('unmapped = "keep"', MESSAGE, ("map", "unmapped", "kept")),
        (
            'unmapped = "default"\ndefault = "GEN"',
            MESSAGE.replace(b"CARDIO^", b"GEN^"),
            ("map", "unmapped", "default"),
        ),
        ('unmapped = "fail"', None, ("map", "dropped", "unmapped")),
    ],
)
async def test_an_unmapped_value_is_kept_defaulted_or_fails(
    tmp_path: Path, unmapped: str, delivered: bytes | None, decision: tuple[str, str, str]
) -> None:
    steps = f'[[routes.steps]]\nkind = "map"\nfield = "PV1-3-1"\ntable = "wards.csv"\n{unmapped}\n'
    assert await run(config(tmp_path, steps, "pas,lab\nNEURO,NEU\n")) == (delivered, [decision])


async def test_a_message_without_the_segment_goes_on_unchanged(tmp_path: Path) -> None:
    steps = '[[routes.steps]]\nkind = "set"\nfield = "ZBE-1"\nvalue = "X"\n'
    assert await run(config(tmp_path, steps)) == (MESSAGE, [("set", "skipped", "no_segment")])


@pytest.mark.parametrize(
    ("steps", "wards", "key", "expected"),
    [
        ('kind = "set"\nfield = "PV1/3"\nvalue = "x"', WARDS, "field", "a field such as MSH-5"),
        ('kind = "set"\nfield = "MSH-2"\nvalue = "x"', WARDS, "field", "MSH-1 and MSH-2"),
        ('kind = "copy"\nfield = "PV1-3-1"\nsource = "PID-3"', WARDS, "source", "a component"),
        ('kind = "map"\nfield = "PV1-3-1"\ntable = "none.csv"', WARDS, "table", "readable"),
        (
            'kind = "map"\nfield = "PV1-3-1"\ntable = "wards.csv"',
            "pas,lab\nA,B,C\n",
            "table",
            "two columns per row (wards.csv line 2: 3)",
        ),
        (
            'kind = "map"\nfield = "PV1-3-1"\ntable = "wards.csv"',
            "pas,lab\nA,B\nA,C\n",
            "table",
            "line 3 repeats one",
        ),
        (
            'kind = "map"\nfield = "PV1-3-1"\ntable = "wards.csv"\nunmapped = "default"',
            WARDS,
            "default",
            'exactly when unmapped = "default"',
        ),
        ('kind = "map"\nfield = "PV1-3-1"', WARDS, "table", "required"),
    ],
)
def test_step_settings_errors_name_the_file_and_key(
    tmp_path: Path, steps: str, wards: str, key: str, expected: str
) -> None:
    error = config_error(config(tmp_path, f"[[routes.steps]]\n{steps}\n", wards))
    assert error.file.endswith("engine.toml")
    assert error.key == f"routes[0].steps[0].{key}"
    assert expected in error.expected
