"""The generic core knows messages, routes, steps and destinations, never INS; the store
imports nothing above it. Read from the source, so a new import that breaks this fails."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
CORE = [
    "listener.py",
    "intake.py",
    "router.py",
    "route.py",
    "pipeline.py",
    "decision.py",
    "store",
    "delivery",
]
STORE_MAY_IMPORT = (
    "engine.store",
    "engine.store.decision",
    "engine.errors",
    "engine.base.logs",
    "engine.base.folders",
)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("engine")}


def modules(*names: str) -> list[Path]:
    paths = [ENGINE / name for name in names]
    return [p for path in paths for p in ([path] if path.is_file() else sorted(path.rglob("*.py")))]


def test_the_core_never_imports_ins() -> None:
    offending = {
        str(path.relative_to(ENGINE)): sorted(
            name for name in imports(path) if name.startswith(("engine.enrich", "engine.ins"))
        )
        for path in modules(*CORE)
    }
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_store_imports_nothing_above_it() -> None:
    offending = {
        str(path.relative_to(ENGINE)): sorted(
            name for name in imports(path) if not name.startswith(STORE_MAY_IMPORT)
        )
        for path in modules("store")
    }
    assert {path: names for path, names in offending.items() if names} == {}
