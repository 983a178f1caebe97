"""The package's shape: small modules, no import cycle, leaf modules that load no app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .support import ROOT

PACKAGE = ROOT / "mina"
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The mina modules *path* imports, at module level or inside functions (a cycle through
    a deferred import is a cycle all the same), but not under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    known = {_name(module) for module in MODULES}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from mina import db` loads the submodule; `from mina.x import name` x.
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return {name for name in found if name in known}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_modules_stay_small_or_say_why(path: Path) -> None:
    """One job per module: over 400 lines, the docstring must give the reason."""
    text = path.read_text(encoding="utf-8")

    assert text.count("\n") <= 400 or "Over 400 lines" in (ast.get_docstring(ast.parse(text)) or "")


def test_the_import_graph_has_no_cycle() -> None:
    graph = {_name(path): _imports(path) for path in MODULES}
    # A package's modules import their package first: that edge is the import system's.
    for name, targets in graph.items():
        targets -= {name.rpartition(".")[0]}
        targets.discard(name)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])

    assert [] == cycles


@pytest.mark.parametrize(
    "module", ["mina", "mina.redaction", "mina.observability.schema", "mina.testing.plugin"]
)
def test_leaf_modules_load_neither_flask_nor_the_app(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('flask', 'mina.app', 'mina.api') if m in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    assert "[]\n" == result.stdout


@pytest.mark.parametrize("path", [".env", "instance/mina.sqlite3", "var/mina.sqlite3"])
def test_secrets_and_state_are_never_committed(path: str) -> None:
    # .env holds the DSN (the README says to put it there); instance/ and var/ hold data.
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", path],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert 0 == done.returncode, f"{path} is not ignored by .gitignore"
