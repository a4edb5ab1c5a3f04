"""Installed step kinds are found through their entry points, the engine's own as any other;
one that fails to load is named, with why, to a configuration that uses it, and the engine's
other kinds still work; a guard from another package is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config.kinds import installed
from engine.config.settings import load_config
from engine.errors import ConfigError
from engine.steps.fields import SET
from engine.steps.registry import registry


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder on sys.path where a test installs distributions by hand."""
    monkeypatch.syspath_prepend(str(tmp_path))
    installed.cache_clear()
    yield tmp_path
    installed.cache_clear()


def distribution(
    site: Path, name: str, entry_points: str, module: str, group: str = "ins_engine.steps"
) -> None:
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry_points}\n")
    (site / f"{name}.py").write_text(module)


def test_the_engine_s_own_kinds_come_from_its_entry_points() -> None:
    found = registry()
    assert {"ins_enrich", "filter", "validate", "set", "copy", "map"} <= set(found.kinds)
    assert {found.origins[name] for name in ("ins_enrich", "set")} == {"built-in"}
    assert [guard.name for guard in found.guards] == ["ins_guard"]


def test_a_guard_from_another_package_is_refused(site: Path) -> None:
    distribution(
        site,
        "lenient",
        "ins_guard = lenient:GUARD",
        "GUARD = None\n",
        group="ins_engine.guards",
    )
    found = registry()
    assert [guard.name for guard in found.guards] == ["ins_guard"]
    assert found.guards[0].doc.startswith("removes every INS")


def test_a_broken_kind_is_left_out_and_named(site: Path, tmp_path: Path) -> None:
    distribution(site, "broken_kind", "teleport = broken_kind:KIND", "import nowhere\n")
    distribution(site, "imposter", "set = imposter:KIND", "KIND = 'not a kind'\n")
    found = registry()
    assert found.broken == {
        "teleport": "ModuleNotFoundError",
        "set": "not a StepKind of that name, or a name already taken",
    }
    assert found.kinds["set"] is SET
    assert "teleport" not in found.kinds
    config = tmp_path / "engine.toml"
    config.write_text(
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n[[routes.steps]]\nkind = "teleport"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.key == "routes[0].steps[0].kind"
    assert "installed teleport failed: ModuleNotFoundError" in caught.value.expected


def test_the_console_learns_the_outcomes_from_the_kinds() -> None:
    """The message list's filter and a message page's flags: what `ins_enrich` declares."""
    kinds = registry()
    assert {"added", "not_found", "insi_unavailable"} <= set(kinds.outcomes())
    assert kinds.outcomes() == sorted(kinds.outcomes())
    assert kinds.attention() <= set(kinds.outcomes())
    assert "not_found" in kinds.attention() and "added" not in kinds.attention()
