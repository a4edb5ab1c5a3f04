"""The engine's rooms stand in layers: a room imports only rooms below it, and the generic
core reaches nothing of INS, not even through another module; nor does the shell (the HTTP
listener, the console, the application), but for the few pages that are about INS itself.

Imports are read from the source and followed from module to module: top-level and
function-level imports count (both run when the code does), an import under `if
TYPE_CHECKING:` does not (it never runs). A test then imports the core's entry points in a
fresh interpreter and looks at what got loaded, so a dynamic import cannot hide either.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from engine.config.kinds import GUARD_KINDS, STEP_KINDS

ENGINE = Path(__file__).resolve().parent.parent / "engine"

# Lowest first. A room may import the rooms of lower lines only: not a higher one, and not
# one beside it on its own line (those stay independent of each other).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "engine"),  # the error tree; the package itself (its version, its name)
    ("base",),  # logs, metrics, folders, private files: what every stage stands on
    ("hl7", "mllp"),  # protocol libraries
    ("store",),
    ("config", "coordination"),  # the configuration reads the store's URL forms and limits
    ("steps",),  # the step-kind API, the step runner and the generic kinds
    ("handoffs",),  # the signals by which the stages below tell each other of a message
    ("routing", "delivery"),
    ("inbound",),  # the intake applies the route's steps before the ACK (`routing.route`)
    ("ins",),  # the INS plug-in: the INSi domain and client...
    ("enrich",),  # ...and the `ins_enrich` kind and the INS guard on top of it
    ("fhir",),  # FR Core Patient from an ADT message, its INS by the guard's own rules
    ("embed",),
    ("tools", "http", "testing"),  # testing: doubles for tests, imported by no engine module
    ("console",),
    ("app",),
    ("commands",),
    ("cli",),
    ("__main__",),  # `python -m engine`
]
CORE = ("inbound", "store", "routing", "delivery", "steps", "config", "base", "coordination")
CORE += ("mllp", "hl7")
INS = ("engine.ins", "engine.enrich", "zeep")
SHELL = ("base", "http", "console", "app")
# The shell's modules that are about INS by nature, and the only ones there that may reach it:
INS_PAGES = {
    # `POST /api/v1/enrich` answers with the INS step's decision (its X-INS-* headers): it
    # finds it by the kind's name (`engine.enrich.store.KIND`).
    "engine.http.api",
    # The identity work list: the INS plug-in's reviews, and their CSV report.
    "engine.console.identities",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ENGINE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ENGINE.rglob("*.py"))}


def room(module: str) -> str:
    """`engine.store.sqlite` → `store`; `engine` → `engine`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except what sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _with_parents(name: str) -> list[str]:
    """Importing `a.b.c` runs `a`, `a.b` and `a.b.c`."""
    parts = name.split(".")
    return [".".join(parts[: index + 1]) for index in range(len(parts))]


@cache
def imports(module: str) -> frozenset[str]:
    """The modules `module` imports when it runs: engine modules by full name (a `from`
    import of a submodule counts as that submodule), others by their top-level package."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(MODULES[module].read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(
                submodule
                for alias in node.names
                if (submodule := f"{node.module}.{alias.name}") in MODULES
            )
    engine = {parent for name in found if name in MODULES for parent in _with_parents(name)}
    others = {name.split(".")[0] for name in found} - {"engine"}
    return frozenset({name for name in engine if name in MODULES} | others)


def reached(module: str, beyond: frozenset[str] = frozenset()) -> set[str]:
    """Everything `module` imports, and what those import, to the end (not followed further
    than the modules `beyond`)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in imports(todo.pop()):
            if name not in seen:
                seen.add(name)
                if name in MODULES and name not in beyond:
                    todo.append(name)
    return seen


def test_the_core_reaches_nothing_of_ins() -> None:
    core = [module for module in MODULES if room(module) in CORE]
    assert len(core) > 60  # the rooms are where this test looks for them
    offending = {
        module: sorted(name for name in reached(module) if name.startswith(INS)) for module in core
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_the_shell_reaches_nothing_of_ins_but_through_its_ins_pages() -> None:
    """The HTTP view, `/readyz`, `/metrics`, the dashboard and the runtime show INSi through
    what its kind offers (`engine.steps.panel`, `StepKind.metrics`), never by its name."""
    pages = frozenset(INS_PAGES)
    assert pages <= set(MODULES)  # each exception names a module that exists
    shell = [module for module in MODULES if room(module) in SHELL and module not in pages]
    assert {"engine.http.health", "engine.console.dashboard", "engine.app.runtime"} <= set(shell)
    offending = {
        module: sorted(name for name in reached(module, pages) if name.startswith(INS))
        for module in shell
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_a_room_imports_only_the_rooms_below_it() -> None:
    rank = {name: index for index, line in enumerate(LAYERS) for name in line}
    assert set(map(room, MODULES)) <= set(rank)  # every room has its place
    offending = sorted(
        f"{module} -> {name}"
        for module in MODULES
        for name in imports(module)
        if name in MODULES and room(name) != room(module) and rank[room(name)] >= rank[room(module)]
    )
    assert offending == []


def test_importing_the_core_loads_no_kind_and_nothing_of_ins() -> None:
    """In a fresh interpreter: the intake, the listener, the router, a delivery worker and
    the stores load no step kind (entry points load them when a configuration names one),
    hence nothing of INS and not zeep."""
    kinds = sorted(
        {entry.module for group in (STEP_KINDS, GUARD_KINDS) for entry in entry_points(group=group)}
    )
    assert "engine.enrich.kind" in kinds
    code = (
        "import sys, json\n"
        "import engine.inbound.intake, engine.inbound.listener, engine.routing.router\n"
        "import engine.delivery.worker, engine.store.sqlite, engine.store.postgresql\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert [name for name in loaded if name.startswith(INS) or name in kinds] == []
