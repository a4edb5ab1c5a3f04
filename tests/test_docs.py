"""The documentation stays true: every TOML example loads through the engine's configuration
loader, the generated reference pages expand, and the README stays a short front door whose
links all lead somewhere (hl7_samples/README.md's too).

The line before a ```toml fence says what the block is (`<!-- toml: KIND -->`, the table in
docs/contributing/index.md); examples are loaded beside a copy of the shipped `routes/`, so
the paths they name (lookup tables) exist.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from engine.config.settings import load_config
from engine.tools.route_tests import case_settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
KIND = re.compile(r"^<!-- toml: (.+) -->$")
README_MAX_LINES = 200
LINK = re.compile(r"\]\(([^)\s]+)\)")
FILE_PATH = re.compile(r"`([\w./-]+/[\w.-]+\.(?:md|py|toml|json|hl7|csv))`")  # `docs/x.md`


@dataclass(frozen=True)
class Example:
    page: Path
    line: int  # of the opening fence, counted from 1
    kind: str | None
    text: str

    @property
    def label(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """The page's fenced ```toml blocks, each with the kind its preceding comment names."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    opening = None  # the line number of the fence of the block being read, if any
    for number, line in enumerate(lines):
        if not line.strip().startswith("```"):
            continue
        if opening is None:
            opening = number
            continue
        if lines[opening].strip() == "```toml":
            marker = KIND.match(lines[opening - 1].strip()) if opening else None
            text = "\n".join(lines[opening + 1 : number])
            found.append(Example(page, opening + 1, marker and marker.group(1), text))
        opening = None
    return found


EXAMPLES = [example for page in PAGES for example in examples(page)]
ROUTE_HEAD = 'name = "example"\nlisten = "127.0.0.1:2599"\n'
A_DESTINATION = '\n[[destinations]]\nname = "out"\nfile = "out"\n'
SHIPPED_ROUTES = 'route_files = ["pas-ehr.route.toml", "lab-results.route.toml"]\n'


def load_example(example: Example, folder: Path) -> None:
    """Load the block as its kind says, through the loader `check` and `run` use; raises
    what they would report."""
    shutil.copytree(ROOT / "routes", folder, ignore=shutil.ignore_patterns("tests", "users.toml"))
    engine_file = folder / "example.toml"
    route_file = folder / "example.route.toml"
    text = example.text + "\n"
    if example.kind == "engine file":
        engine_file.write_text(text, encoding="utf-8")
    elif example.kind == "engine fragment":
        engine_file.write_text(SHIPPED_ROUTES + text, encoding="utf-8")
    elif example.kind in ("route file", "route fragment"):
        if example.kind == "route fragment":
            text = ROUTE_HEAD + text + ("" if "[[destinations]]" in text else A_DESTINATION)
        route_file.write_text(text, encoding="utf-8")
        engine_file.write_text(f'route_files = ["{route_file.name}"]\n', encoding="utf-8")
    elif example.kind == "route test case":
        case_settings(tomllib.loads(text), folder / "case.toml")
        return
    elif example.kind == "not configuration":
        tomllib.loads(text)
        return
    else:
        raise AssertionError(f"{example.label}: unknown kind {example.kind!r}")
    load_config(engine_file)


def test_the_docs_hold_configuration_examples() -> None:
    kinds = {example.kind for example in EXAMPLES}
    assert {"engine file", "route file", "engine fragment", "route fragment"} <= kinds


def test_every_toml_example_says_what_it_is() -> None:
    unmarked = [example.label for example in EXAMPLES if example.kind is None]
    assert not unmarked, f"add <!-- toml: KIND --> before: {unmarked}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.label)
def test_the_example_loads(example: Example, tmp_path: Path) -> None:
    if example.kind is None:
        pytest.skip("unmarked: reported by test_every_toml_example_says_what_it_is")
    load_example(example, tmp_path / "routes")


def test_a_broken_example_fails(tmp_path: Path) -> None:
    broken = Example(README, 1, "route fragment", '[[steps]]\nkind = "filter"\naction = "maybe"')
    with pytest.raises(Exception, match=r"steps\[0\]\.action"):
        load_example(broken, tmp_path / "routes")


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES


def in_repository(path: Path) -> bool:
    """The file exists, and in the repository: not beside it on the machine that builds."""
    return path.exists() and path.resolve().is_relative_to(ROOT)


@pytest.mark.parametrize(
    "readme", [README, ROOT / "hl7_samples" / "README.md"], ids=["README", "hl7_samples"]
)
def test_the_readmes_name_only_files_that_exist(readme: Path) -> None:
    """Links are relative to the README's folder; a path in backticks may be to the root's."""
    text = readme.read_text(encoding="utf-8")
    local = [target.split("#")[0] for target in LINK.findall(text) if "://" not in target]
    assert local, "the README links into the repository"
    missing = [target for target in local if target and not in_repository(readme.parent / target)]
    named = FILE_PATH.findall(text)
    missing += [
        path
        for path in named
        if not (in_repository(readme.parent / path) or in_repository(ROOT / path))
    ]
    assert not missing


def reference_hook() -> ModuleType:
    """docs/gen_reference.py, the MkDocs hook that writes the reference pages."""
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs/gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_pages_are_written_from_the_code() -> None:
    hook = reference_hook()
    pages = {
        name: hook.expand((ROOT / "docs/reference" / f"{name}.md").read_text(encoding="utf-8"))
        for name in ("configuration", "metrics", "cli")
    }
    assert not any(hook.MARKER.search(page) for page in pages.values())
    assert "| `engine.store` |" in pages["configuration"]
    assert "`filter` (built-in; may run before the ACK)" in pages["configuration"]
    received = "| `ins_engine_messages_received_total` | counter | `route`, `ack_code` |"
    assert received in pages["metrics"]
    assert "| `ins_engine_store_wal_bytes` | gauge |" in pages["metrics"]
    assert "\n## `ins-engine queue`\n" in pages["cli"]
    assert "\n### `ins-engine queue resend`\n" in pages["cli"]
