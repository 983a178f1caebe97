"""Mutation testing: do the tests notice when the code is wrong?

Run: ``make mutate`` (or ``python tools/mutate.py --help``). For each target (a module or a
package), every mutation point of its source is listed, *N* of them are sampled with a fixed
seed, and each mutant runs against the target's own tests (``-x``, with a per-mutant
timeout). A mutant those tests miss runs against every other test of the suite that
executes the mutated statement; one that survives that too is printed with its place and
change, for a human to judge. Mutants judged equivalent (no test can tell them apart) are
named with the reason in ``tools/mutate_equivalent.txt``: they are not run, and not counted
in the killed share.

Which tests execute which line comes from one run of the whole suite under coverage.py
at the start (each line's contexts are the ids of the tests that ran it), which also
checks that the unmutated suite passes. A statement run at import time (module and class
bodies, ``def`` lines and their defaults) reaches every test of its module, so a mutant
there runs against every test that executed any line of the file. Lines run only in
subprocesses a test starts (gunicorn workers, the CLI) are not in the map: a mutant only
they would notice is reported as a survivor, never counted as killed.

Mutants run in copies of the repository (never the working tree), ``--jobs`` at a time, so
an interrupted run leaves nothing behind. Mutations: comparisons flipped and moved off by
one, ``and``/``or`` swapped, conditions negated, ``not`` dropped, arithmetic and bitwise
operators swapped, constants changed, entries deleted from literal lists of strings (word
lists), statements deleted, ``continue``/``break`` swapped, returned values replaced by
``None``.

Over 400 lines: one visitor method per kind of node, and a self-contained tool (copied or
run with the standard library and coverage.py) reads better as one file.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: ``path | description | code | reason`` per equivalent mutant, *code* being the mutated
#: line's text (stripped): a mutant is named by what it changes, not by a line number that
#: any edit above it moves.
EQUIVALENTS = ROOT / "tools" / "mutate_equivalent.txt"

#: target (a module or a package directory) -> its own tests, and how many mutants to sample.
DEFAULT_TARGETS: dict[str, tuple[list[str], int]] = {
    # Fast unit tests first: with -x, most mutants die in the first seconds.
    "mina/redaction": (
        [
            "tests/redaction/test_keys.py",
            "tests/redaction/test_text.py",
            "tests/redaction/test_walk.py",
            "tests/redaction/test_vendors.py",
            "tests/redaction/test_cards.py",
            "tests/observability/sentry/test_payloads.py",
            "tests/redaction",
        ],
        60,
    ),
    "mina/observability/processors.py": (["tests/observability/test_processors.py"], 30),
    "mina/observability/context.py": (["tests/observability/test_context.py"], 20),
    "mina/observability/flask.py": (["tests/observability/test_flask.py"], 20),
    # The Sentry outbox, its transport, and the stdout writer: where a bug loses events or
    # lines without any error.
    "mina/observability/sentry/outbox.py": (["tests/observability/sentry/test_outbox.py"], 60),
    "mina/observability/sentry/transport.py": (
        ["tests/observability/sentry/test_transport.py"],
        60,
    ),
    # The stdout writer is three modules since the split: handler and batches, the
    # callers' side (LineWriter) and its writer thread.
    "mina/observability/stream.py": (["tests/test_stream.py"], 20),
    "mina/observability/stream_writer.py": (["tests/test_stream.py"], 30),
    "mina/observability/stream_thread.py": (["tests/test_stream.py"], 20),
}
#: Fallbacks while a target's mirrored tests do not exist yet.
FALLBACK_TESTS: dict[str, list[str]] = {
    "mina/observability/processors.py": ["tests/test_logging_config.py"],
    "mina/observability/context.py": ["tests/test_context.py"],
    "mina/observability/flask.py": ["tests/test_web.py"],
}

_COMPARE_SWAPS: dict[type[ast.cmpop], list[type[ast.cmpop]]] = {
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Lt: [ast.GtE, ast.LtE],
    ast.LtE: [ast.Gt, ast.Lt],
    ast.Gt: [ast.LtE, ast.GtE],
    ast.GtE: [ast.Lt, ast.Gt],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
    ast.BitXor: ast.BitOr,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
_DELETABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise)


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change at one place of one file."""

    path: str  # relative to the repository
    index: int  # the mutation point's number in the file
    line: int
    description: str
    #: The lines of the statement (its header, for ``if``/``for``/...) holding the point,
    #: or ``None`` when it runs at import time (outside any function).
    statement: tuple[int, int] | None = None


class _Mutator(ast.NodeTransformer):
    """Numbers every mutation point; with *target* set, applies that one."""

    def __init__(self, target: int = -1) -> None:
        self.target = target
        self.points: list[tuple[int, str]] = []
        #: Per point: the lines of the statement it is in, ``None`` outside functions.
        self.statements: list[tuple[int, int] | None] = []
        self._enclosing: list[tuple[int, int]] = []  # statements being visited, innermost last
        self._functions = 0  # function bodies being visited

    def _point(self, node: ast.AST, description: str) -> bool:
        index = len(self.points)
        self.points.append((getattr(node, "lineno", 0), description))
        inside = self._functions > 0 and self._enclosing
        self.statements.append(self._enclosing[-1] if inside else None)
        return index == self.target

    # Never inside annotations, docstrings, __all__/__slots__ or __future__ imports.
    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        if node.value is not None:
            node.value = self.visit(node.value)
        return self._statement(node)

    def visit_arg(self, node: ast.arg) -> Any:
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        self._functions += 1
        try:
            node.body = self._body(node.body)
        finally:
            self._functions -= 1
        node.args = self.visit(node.args)
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        node.body = self._body(node.body)
        node.bases = [self.visit(b) for b in node.bases]
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        return node

    def visit_Module(self, node: ast.Module) -> Any:
        node.body = self._body(node.body)
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        return node

    def visit_Import(self, node: ast.Import) -> Any:
        return node

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                out.append(stmt)
                continue
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("__all__", "__slots__") for t in stmt.targets
            ):
                out.append(stmt)
                continue
            self._enclosing.append(_header(stmt))
            try:
                new = self.visit(stmt)
            finally:
                self._enclosing.pop()
            if new is not None:
                out.append(new)
        return out or [ast.Pass()]

    def generic_visit(self, node: ast.AST) -> ast.AST:
        # NodeTransformer's, except that statement lists go through _body (once).
        for field, old in ast.iter_fields(node):
            if isinstance(old, list) and old and isinstance(old[0], ast.stmt):
                setattr(node, field, self._body(old))
            elif isinstance(old, list):
                old[:] = [self.visit(v) if isinstance(v, ast.AST) else v for v in old]
            elif isinstance(old, ast.AST):
                setattr(node, field, self.visit(old))
        return node

    def _statement(self, node: ast.stmt) -> Any:
        if isinstance(node, _DELETABLE) and self._point(node, "statement deleted"):
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Assign(self, node: ast.Assign) -> Any:
        self.generic_visit(node)
        return self._statement(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        self.generic_visit(node)
        swap = _BINOP_SWAPS.get(type(node.op))
        if swap is not None and self._point(node, f"{_op(node.op)}= -> {_op(swap())}="):
            node.op = swap()
        return self._statement(node)

    def visit_Expr(self, node: ast.Expr) -> Any:
        self.generic_visit(node)
        return self._statement(node)

    def visit_Raise(self, node: ast.Raise) -> Any:
        self.generic_visit(node)
        return self._statement(node)

    def visit_Return(self, node: ast.Return) -> Any:
        self.generic_visit(node)
        value = node.value
        if (
            value is not None
            and not (isinstance(value, ast.Constant) and value.value is None)
            and self._point(node, "return value -> None")
        ):
            node.value = ast.Constant(None)
            return node
        return self._statement(node)

    def visit_Continue(self, node: ast.Continue) -> Any:
        if self._point(node, "continue -> break"):
            return ast.copy_location(ast.Break(), node)
        return node

    def visit_Break(self, node: ast.Break) -> Any:
        if self._point(node, "break -> continue"):
            return ast.copy_location(ast.Continue(), node)
        return node

    def _negate_test(self, node: ast.If | ast.While | ast.IfExp) -> None:
        if self._point(node, "condition negated"):
            node.test = ast.UnaryOp(ast.Not(), node.test)

    def visit_If(self, node: ast.If) -> Any:
        self.generic_visit(node)
        self._negate_test(node)
        return node

    def visit_While(self, node: ast.While) -> Any:
        self.generic_visit(node)
        self._negate_test(node)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        self.generic_visit(node)
        self._negate_test(node)
        return node

    def visit_Compare(self, node: ast.Compare) -> Any:
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            for swap in _COMPARE_SWAPS.get(type(op), []):
                if self._point(node, f"{_op(op)} -> {_op(swap())}"):
                    node.ops[i] = swap()
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        self.generic_visit(node)
        swap = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._point(node, f"{_op(node.op)} -> {_op(swap())}"):
            node.op = swap()
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._point(node, "not dropped"):
            return node.operand
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        self.generic_visit(node)
        swap = _BINOP_SWAPS.get(type(node.op))
        if swap is not None and self._point(node, f"{_op(node.op)} -> {_op(swap())}"):
            node.op = swap()
        return node

    def visit_Constant(self, node: ast.Constant) -> Any:
        value = node.value
        if isinstance(value, bool):
            if self._point(node, f"{value} -> {not value}"):
                return ast.copy_location(ast.Constant(not value), node)
        elif isinstance(value, int):
            if self._point(node, f"{value} -> {value + 1}"):
                return ast.copy_location(ast.Constant(value + 1), node)
        elif isinstance(value, str):
            new = "" if value else "X"
            if self._point(node, f"{_short(value)} -> {new!r}"):
                return ast.copy_location(ast.Constant(new), node)
        return node

    def _entries(self, node: ast.Tuple | ast.List | ast.Set) -> Any:
        words = [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
        if len(node.elts) >= 2 and len(words) == len(node.elts):
            for i, entry in enumerate(node.elts):
                if self._point(node, f"entry {_short(entry.value)} deleted"):  # type: ignore[attr-defined]
                    node.elts = node.elts[:i] + node.elts[i + 1 :]
                    return node
            return node  # a word list: its entries are mutated by deletion only
        self.generic_visit(node)
        return node

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return self._entries(node)

    def visit_List(self, node: ast.List) -> Any:
        return self._entries(node)

    def visit_Set(self, node: ast.Set) -> Any:
        return self._entries(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        return node  # f-strings: their constant parts cannot be swapped independently


def _header(stmt: ast.stmt) -> tuple[int, int]:
    # The lines coverage.py may report for the statement itself: all of a simple one, the
    # header of a compound one (its body's statements are their own).
    body = getattr(stmt, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
        return stmt.lineno, max(stmt.lineno, body[0].lineno - 1)
    return stmt.lineno, stmt.end_lineno or stmt.lineno


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


_OP_TEXT = {
    "Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">=", "In": "in",
    "NotIn": "not in", "Is": "is", "IsNot": "is not", "And": "and", "Or": "or", "Add": "+",
    "Sub": "-", "Mult": "*", "FloorDiv": "//", "Div": "/", "Mod": "%", "BitOr": "|",
    "BitAnd": "&", "BitXor": "^", "LShift": "<<", "RShift": ">>",
}  # fmt: skip


def _op(op: ast.AST) -> str:
    return _OP_TEXT.get(type(op).__name__, type(op).__name__)


def _short(value: str) -> str:
    return repr(value if len(value) <= 30 else value[:27] + "...")


def mutation_points(source: str) -> list[tuple[int, str]]:
    """Return ``(line, description)`` for every mutation point of *source*, in order."""
    mutator = _Mutator()
    mutator.visit(ast.parse(source))
    return mutator.points


def mutate(source: str, index: int) -> str:
    """Return *source* with mutation point *index* applied (see `mutation_points`)."""
    mutator = _Mutator(target=index)
    tree = mutator.visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))


def _files(target: str) -> list[str]:
    path = ROOT / target
    if path.is_dir():
        return sorted(str(p.relative_to(ROOT)) for p in path.rglob("*.py"))
    return [target]


def sample(target: str, count: int, seed: int) -> list[Mutant]:
    """Return *count* mutants of *target* (every one when it has fewer), chosen by *seed*."""
    everything = []
    for path in _files(target):
        mutator = _Mutator()
        mutator.visit(ast.parse((ROOT / path).read_text(encoding="utf-8")))
        everything += [
            Mutant(path, index, line, description, statement)
            for index, ((line, description), statement) in enumerate(
                zip(mutator.points, mutator.statements, strict=True)
            )
        ]
    chosen = random.Random(f"{seed}:{target}").sample(everything, min(count, len(everything)))
    return sorted(chosen, key=lambda m: (m.path, m.index))


def _copy_repository(into: Path) -> Path:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", ".mutate", "__pycache__", ".*_cache", ".hypothesis", "*.egg-info"
    )
    work = into / "repo"
    shutil.copytree(ROOT, work, ignore=ignore)
    return work


#: Loaded into the coverage run with ``-p``: each test's lines get its id as context.
_CONTEXT_PLUGIN = """
import coverage
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    current = coverage.Coverage.current()
    if current is not None:
        current.switch_context(item.nodeid)
    yield
"""
_PLUGIN_NAME = "_mina_mutate_contexts"


def _pytest(
    work: Path,
    tests: list[str],
    timeout: float,
    seed: int,
    *,
    stop: bool = True,
    prefix: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> tuple[str, list[str]]:
    """Run pytest in *work*; return ``passed``, ``failed``, ``timeout`` or ``error`` (pytest
    could not run the tests it was given), and the ids of the tests that failed."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(extra_env or {})}
    command = [
        sys.executable, *(prefix or ("-m",)), "pytest", *(["-x"] if stop else []), "-q", "-rf",
        "-p", "no:cacheprovider", "-o", "addopts=", f"--hypothesis-seed={seed}", *tests,
    ]  # fmt: skip
    with subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True, text=True,
    ) as process:  # fmt: skip
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)  # the whole session: servers a test started too
            process.communicate()
            return "timeout", []
    failed = [line.split()[1] for line in out.splitlines() if line.startswith("FAILED ")]
    if process.returncode in (3, 4, 5):  # internal error, usage error, no tests collected
        return "error", failed
    return ("passed" if process.returncode == 0 else "failed"), failed


@dataclasses.dataclass
class CoverageMap:
    """Which tests execute which lines of the targets' files (see the module docstring)."""

    #: path -> line -> ids of the tests that ran it (``file::function``, parameters cut).
    lines: dict[str, dict[int, set[str]]]

    def tests_for(self, mutant: Mutant) -> set[str]:
        """The tests that run the statement *mutant* changes (or its whole file, for one
        run at import time)."""
        by_line = self.lines.get(mutant.path, {})
        if mutant.statement is None:
            return set().union(*by_line.values())
        first, last = mutant.statement
        return set().union(*(by_line.get(line, set()) for line in range(first, last + 1)))


def coverage_map(
    workspace: _Workspace, files: list[str], timeout: float, seed: int
) -> tuple[str, list[str], CoverageMap]:
    """Run the whole suite under coverage.py, measuring *files*; return the outcome, the
    tests that failed, and the map."""
    import coverage  # a dev dependency; listing (--list) works without it

    work = workspace.get()
    plugin_dir = workspace.base / "plugin"
    plugin_dir.mkdir(exist_ok=True)
    (plugin_dir / f"{_PLUGIN_NAME}.py").write_text(_CONTEXT_PLUGIN, encoding="utf-8")
    data_file = workspace.base / "coverage.data"
    prefix = (
        "-m", "coverage", "run", f"--data-file={data_file}",
        f"--include={','.join(str(work / f) for f in files)}", "-m",
    )  # fmt: skip
    python_path = os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")]))
    outcome, failing = _pytest(
        work,
        ["-p", _PLUGIN_NAME, "tests"],
        timeout,
        seed,
        stop=False,
        prefix=prefix,
        extra_env={"PYTHONPATH": python_path},
    )
    lines: dict[str, dict[int, set[str]]] = {}
    if data_file.exists():
        data = coverage.CoverageData(basename=str(data_file))
        data.read()
        for measured in data.measured_files():
            by_line = lines.setdefault(str(Path(measured).relative_to(work)), {})
            for line, contexts in data.contexts_by_lineno(measured).items():
                # "tests/a.py::test_f[x-1]" -> "tests/a.py::test_f": every parameter set,
                # and no parameter id that the command line would misread.
                by_line[line] = {c.split("[", 1)[0] for c in contexts if "::" in c}
    return outcome, failing, CoverageMap(lines)


class _Workspace:
    """A private copy of the repository per worker thread, each file restored after use.

    Covering-test runs take turns (`suite_lock`): they start servers and read shared
    files, and two of them at once failed for each other, killing nothing.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.local = threading.local()
        self.count = 0
        self.lock = threading.Lock()
        self.suite_lock = threading.Lock()
        #: Tests that fail in a copy without any mutant (those that need the checkout's
        #: .venv, say, or that fail under coverage): never used to judge a mutant, or every
        #: mutant would look killed.
        self.unrunnable: set[str] = set()

    def get(self) -> Path:
        work: Path | None = getattr(self.local, "work", None)
        if work is None:
            with self.lock:
                self.count += 1
                slot = self.base / f"w{self.count}"
            slot.mkdir()
            work = self.local.work = _copy_repository(slot)
        return work


def _belongs(test: str, files: list[str]) -> bool:
    # Whether test id *test* is in one of *files* (test files or directories).
    return any(
        test == f or test.startswith((f + "::", f + "/")) for f in (f.rstrip("/") for f in files)
    )


@contextlib.contextmanager
def _mutated(work: Path, mutant: Mutant) -> Iterator[None]:
    file = work / mutant.path
    original = file.read_text(encoding="utf-8")
    file.write_text(mutate(original, mutant.index), encoding="utf-8")
    try:
        yield
    finally:
        file.write_text(original, encoding="utf-8")


def _result(mutant: Mutant, outcome: str, stage: str, seconds: float) -> dict[str, Any]:
    return {
        **dataclasses.asdict(mutant),
        "killed": outcome in ("failed", "timeout"),
        "outcome": outcome,
        "stage": stage,
        "seconds": round(seconds, 1),
    }


def run_own(
    workspace: _Workspace, mutant: Mutant, tests: list[str], timeout: float, seed: int
) -> dict[str, Any]:
    """Run *mutant* against its target's own *tests*; running out of *timeout* seconds
    counts as killed (a mutant that loops forever is caught)."""
    work = workspace.get()
    started = time.monotonic()
    with _mutated(work, mutant):
        outcome, _ = _pytest(work, tests, timeout, seed)
    if outcome == "error":  # they pass unmutated: the mutant broke pytest's start
        outcome = "failed"
    return _result(mutant, outcome, "own tests", time.monotonic() - started)


def run_covering(
    workspace: _Workspace,
    mutant: Mutant,
    tests: list[str],
    covering: Callable[[Mutant], set[str]],
    timeout: float,
    seed: int,
    own: dict[str, Any],
) -> dict[str, Any]:
    """Run *mutant*, which its own *tests* missed (*own*: that result), against the other
    tests that run the mutated statement (*covering* waits for the coverage map)."""
    rest = sorted(
        test for test in covering(mutant) - workspace.unrunnable if not _belongs(test, tests)
    )
    if not rest:
        return own
    work = workspace.get()
    started = time.monotonic()
    with _mutated(work, mutant), workspace.suite_lock:
        outcome, _ = _pytest(work, rest, timeout, seed)
    seconds = own["seconds"] + time.monotonic() - started
    return _result(mutant, outcome, f"{len(rest)} covering tests", seconds)


def _equivalents() -> dict[tuple[str, str, str], str]:
    # (path, description, code) -> reason; blank lines and lines starting with # ignored.
    found = {}
    if EQUIVALENTS.exists():
        for raw in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
            if not raw.strip() or raw.startswith("#"):
                continue
            path, rest = raw.split(" | ", 1)
            named, reason = rest.rsplit(" | ", 1)
            description, code = named.split(" | ", 1)
            found[(path.strip(), description.strip(), code.strip())] = reason.strip()
    return found


def _code(mutant: Mutant) -> str:
    lines = (ROOT / mutant.path).read_text(encoding="utf-8").splitlines()
    return lines[mutant.line - 1].strip() if 0 < mutant.line <= len(lines) else ""


def _tests_of(target: str, tests: list[str]) -> list[str]:
    present = [t for t in tests if (ROOT / t).exists()]
    return present or [t for t in FALLBACK_TESTS.get(target, []) if (ROOT / t).exists()]


def _parse_targets(values: list[str]) -> dict[str, tuple[list[str], int]]:
    # "mina/x.py=tests/a.py,tests/b:40": tests and count are optional.
    targets = {}
    for value in values:
        spec, _, count = value.partition(":")
        target, _, tests = spec.partition("=")
        default_tests, default_count = DEFAULT_TARGETS.get(target, ([], 40))
        targets[target] = (
            tests.split(",") if tests else default_tests,
            int(count) if count else default_count,
        )
    return targets


def run_all(
    plan: list[tuple[str, list[str], Mutant]],
    workspace: _Workspace,
    covering: Callable[[Mutant], set[str]],
    args: argparse.Namespace,
    results: dict[str, list[dict[str, Any]]],
) -> None:
    """Run every mutant of *plan*, ``args.jobs`` at a time, into *results*: all of them
    against their own tests first, then those that survived against the covering tests
    (which needs the coverage map, built meanwhile); print each survivor."""

    def baseline(own: list[str]) -> str:
        return _pytest(workspace.get(), own, args.timeout * 4, args.seed)[0]

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        try:
            # Each target's own tests, unmutated, first in the queue: they must pass, or
            # every mutant would look killed.
            baselines = {t: pool.submit(baseline, own) for t, own, _ in plan}
            first = [
                pool.submit(run_own, workspace, m, own, args.timeout, args.seed)
                for _, own, m in plan
            ]
            for target, unmutated in baselines.items():
                if unmutated.result() != "passed":
                    raise RuntimeError(f"{target}: its own tests fail without any mutant")
            second: list[Future[dict[str, Any]]] = []
            for (_, own, m), future in zip(plan, first, strict=True):
                result = future.result()
                if result["outcome"] == "passed":
                    future = pool.submit(
                        run_covering,
                        workspace,
                        m,
                        own,
                        covering,
                        args.suite_timeout,
                        args.seed,
                        result,
                    )
                second.append(future)
            for (target, _, _), future in zip(plan, second, strict=True):
                result = future.result()
                results[target].append(result)
                if not result["killed"]:
                    print(
                        f"survived ({result['outcome']} after {result['stage']}): "
                        f"{result['path']}:{result['line']}: {result['description']}"
                    )
        except BaseException:  # no map (or ^C): nothing more can be judged
            pool.shutdown(cancel_futures=True)
            raise


def main(argv: list[str] | None = None) -> int:
    """Sample, run and report; return 0 (a report, not a gate) unless a baseline fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "targets", nargs="*", help="TARGET[=TESTS,...][:COUNT] (default: the targets below)"
    )
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--count", type=int, help="mutants per target (overrides defaults)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per own-tests run")
    parser.add_argument(
        "--suite-timeout", type=float, default=900.0, help="seconds per covering-tests run"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--report", default=".mutate/report.json")
    parser.add_argument("--list", action="store_true", help="list the sampled mutants only")
    args = parser.parse_args(argv)
    targets = _parse_targets(args.targets) if args.targets else dict(DEFAULT_TARGETS)
    equivalents = _equivalents()
    plan: list[tuple[str, list[str], Mutant]] = []
    skipped: dict[str, list[tuple[Mutant, str]]] = {t: [] for t in targets}
    for target, (tests, count) in targets.items():
        own = _tests_of(target, tests)
        if not (ROOT / target).exists():
            print(f"{target}: no such module or package, skipped", file=sys.stderr)
            continue
        if not own:
            print(f"{target}: no tests found, skipped", file=sys.stderr)
            continue
        for mutant in sample(target, args.count or count, args.seed):
            reason = equivalents.get((mutant.path, mutant.description, _code(mutant)))
            if reason is None:
                plan.append((target, own, mutant))
            else:
                skipped[target].append((mutant, reason))
    if args.list:
        for _, own, m in plan:
            print(f"{m.path}:{m.line}: {m.description}  [{' '.join(own)}]")
        for equivalent in skipped.values():
            for m, reason in equivalent:
                print(f"{m.path}:{m.line}: {m.description}  [equivalent: {reason}]")
        return 0
    started = time.monotonic()
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    with tempfile.TemporaryDirectory(prefix="mina-mutate-") as base:
        workspace = _Workspace(Path(base))
        files = sorted({m.path for _, _, m in plan})

        def build_map() -> CoverageMap:
            outcome, failing, covered = coverage_map(
                workspace, files, args.suite_timeout, args.seed
            )
            if outcome in ("timeout", "error"):
                raise RuntimeError(f"the suite under coverage: {outcome}, without any mutant")
            # A failing test is left out whole (all its parameter sets), as the map names it.
            workspace.unrunnable = {test.split("[", 1)[0] for test in failing}
            for test in failing:
                print(f"left out of the covering tests (fails in a copy): {test}", file=sys.stderr)
            print(f"coverage map: {time.monotonic() - started:.0f}s", file=sys.stderr)
            return covered

        # The map is built while the mutants run against their own tests: only the
        # covering stage waits for it.
        with ThreadPoolExecutor(max_workers=1) as mapper:
            mapped = mapper.submit(build_map)
            try:
                run_all(plan, workspace, lambda m: mapped.result().tests_for(m), args, results)
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                return 2
    summary = {}
    for target, rows in results.items():
        if rows:
            killed = sum(r["killed"] for r in rows)
            summary[target] = {
                "killed": killed,
                "total": len(rows),
                "equivalent": len(skipped[target]),
            }
            print(
                f"{target}: {killed}/{len(rows)} killed ({100 * killed / len(rows):.1f}%)"
                f", {len(skipped[target])} equivalent left out"
            )
    print(f"{sum(len(r) for r in results.values())} mutants in {time.monotonic() - started:.0f}s")
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"summary": summary, "mutants": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
