"""The example kind, installed as a package: found through its entry point, configured in a
route like a built-in kind, checked, and run as the engine runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.config.settings import load_config
from engine.embed import RouteRunner
from engine.errors import ConfigError
from engine.steps.registry import registry

MESSAGE = (
    b"MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240101||ADT^A28|C1|P|2.5\r"
    b"PID|1||IPP1^^^HOSP^PI||DOE^JANE||19800101|F|||||06 12 34 56 78^PRN^CP~"
    b"01.23.45.67.89^PRN^PH~+33 1 00 00 00 00^WPN^PH\r"
)


def config(tmp_path: Path, keys: str = "") -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        f'[[routes.steps]]\nkind = "phone_e164"\n{keys}\n'
        '[[routes.destinations]]\nname = "ehr"\nfile = "out"\n',
        encoding="utf-8",
    )
    return path


def test_the_kind_comes_from_its_package_entry_point() -> None:
    found = registry()
    assert "phone_e164" in found.kinds
    assert found.origins["phone_e164"] == "ins-engine-phone-format"


async def test_national_numbers_become_international(tmp_path: Path) -> None:
    async with await RouteRunner.open(config(tmp_path)) as runner:
        processed = await runner.process(MESSAGE)
    assert [(d.kind, d.outcome, d.detail) for d in processed.decisions] == [
        ("phone_e164", "formatted", "2")
    ]
    assert processed.destinations["ehr"] == MESSAGE.replace(
        b"06 12 34 56 78^", b"+33612345678^"
    ).replace(b"01.23.45.67.89^", b"+33123456789^")


@pytest.mark.parametrize(
    ("keys", "key", "expected"),
    [
        ('field = "PID-13-1"', "field", "a whole field"),
        ('country_code = "+33"', "country_code", "one to three digits"),
        ("colour = 1", "colour", "known keys: before_ack, country_code, field, kind, name"),
    ],
)
def test_check_reports_its_settings_by_key(
    tmp_path: Path, keys: str, key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config(tmp_path, keys))
    assert caught.value.key == f"routes[0].steps[0].{key}"
    assert expected in caught.value.expected


def test_check_keys_documents_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--keys"]) == 0
    out = capsys.readouterr().out
    assert "`phone_e164` (from ins-engine-phone-format)" in out
    assert "| `country_code` | `'33'` | the country calling code |" in out
