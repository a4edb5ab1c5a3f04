"""Installed step kinds are found through their entry points; one that fails to load is
named, with why, to a configuration that uses it, and the engine's other kinds still work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config.settings import load_config
from engine.errors import ConfigError
from engine.steps.registry import BUILTIN, registry


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder on sys.path where a test installs distributions by hand."""
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.cache_clear()
    yield tmp_path
    registry.cache_clear()


def distribution(site: Path, name: str, entry_points: str, module: str) -> None:
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ins_engine.steps]\n{entry_points}\n")
    (site / f"{name}.py").write_text(module)


def test_a_broken_kind_is_left_out_and_named(installed: Path, tmp_path: Path) -> None:
    distribution(installed, "broken_kind", "teleport = broken_kind:KIND", "import nowhere\n")
    distribution(installed, "imposter", "set = imposter:KIND", "KIND = 'not a kind'\n")
    found = registry()
    assert found.broken == {
        "teleport": "ModuleNotFoundError",
        "set": "not a StepKind of that name, or a name already taken",
    }
    assert found.kinds["set"] is next(kind for kind in BUILTIN if kind.name == "set")
    assert "teleport" not in found.kinds
    config = tmp_path / "engine.toml"
    config.write_text(
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n[[routes.steps]]\nkind = "teleport"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.key == "routes[0].steps[0].kind"
    assert "installed teleport failed: ModuleNotFoundError" in caught.value.expected
