"""The mutation-testing tool: its mutants compile, differ, and are sampled reproducibly."""

from __future__ import annotations

import ast

import pytest

from tools.mutate import mutate, mutation_points, sample

SOURCE = '''"""A docstring that is never mutated."""

from __future__ import annotations

__all__ = ["f"]

WORDS = ("alpha", "beta")


def f(items: list[int], limit: int = 3) -> int | None:
    """Sum the items below *limit*."""
    total = 0
    for item in items:
        if item >= limit and not item % 2:
            continue
        if item < 0:
            break
        total += item * 2
    return total if total else None
'''


def test_every_mutant_compiles_and_changes_the_code() -> None:
    """One point, one change: no mutant is a no-op or a syntax error."""
    original = ast.unparse(ast.parse(SOURCE))
    points = mutation_points(SOURCE)

    mutants = [mutate(SOURCE, i) for i in range(len(points))]

    assert len(points) == len(set(mutants))
    assert original not in mutants
    for mutant in mutants:
        compile(mutant, "<mutant>", "exec")


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("continue -> break", "            break\n        if item < 0:"),
        ("break -> continue", "        if item < 0:\n            continue"),
        (">= -> <", "if item < limit and"),
        ("and -> or", "item >= limit or not"),
        ("not dropped", "limit and item % 2:"),
        ("+= -> -=", "total -= item * 2"),
        ("* -> //", "total += item // 2"),
        ("entry 'beta' deleted", "WORDS = ('alpha',)"),
        ("return value -> None", "return None"),
        ("3 -> 4", "limit: int=4"),
    ],
)
def test_mutations(description: str, expected: str) -> None:
    """Each kind of mutation changes what it says, where it says."""
    [index] = [i for i, (_, d) in enumerate(mutation_points(SOURCE)) if d == description]

    assert expected in mutate(SOURCE, index)


def test_docstrings_annotations_and_dunder_all_are_left_alone() -> None:
    """Mutating them tests nothing: no point is placed there."""
    descriptions = [d for _, d in mutation_points(SOURCE)]

    assert not [d for d in descriptions if "docstring" in d or "'f'" in d or "'int'" in d]
    assert "'A docstring that is never mutated.' -> ''" not in descriptions


def test_sampling_is_reproducible() -> None:
    """The same seed picks the same mutants; another seed, others."""
    first = sample("mina/redaction/cards.py", 10, seed=1)

    assert first == sample("mina/redaction/cards.py", 10, seed=1)
    assert first != sample("mina/redaction/cards.py", 10, seed=2)
    assert 10 == len(first)


def test_each_mutant_knows_the_statement_coverage_must_have_run() -> None:
    """A point in a function body maps to its statement's lines (a compound statement's
    header only); one that runs at import time, to none (the whole file's tests)."""
    import tools.mutate as tool

    mutator = tool._Mutator()
    mutator.visit(ast.parse(SOURCE))
    spans = dict(zip(mutator.points, mutator.statements, strict=True))

    assert (15, 15) == spans[(15, "continue -> break")]
    assert (14, 14) == spans[(14, "and -> or")]  # the `if` line, not its body
    assert (18, 18) == spans[(18, "+= -> -=")]
    assert spans[(7, "entry 'beta' deleted")] is None  # a module-level constant
    assert spans[(10, "3 -> 4")] is None  # a default, evaluated when `def` runs


def test_a_mutant_runs_against_the_tests_that_ran_its_statement() -> None:
    """Line-level for statements in functions, file-level for import-time ones."""
    from tools.mutate import CoverageMap, Mutant

    covered = CoverageMap(
        {"m.py": {3: {"t.py::a"}, 4: {"t.py::b"}, 5: {"t.py::c"}, 9: {"t.py::d"}}}
    )

    assert {"t.py::b", "t.py::c"} == covered.tests_for(Mutant("m.py", 0, 4, "x", (4, 5)))
    assert {"t.py::a", "t.py::b", "t.py::c", "t.py::d"} == covered.tests_for(
        Mutant("m.py", 1, 1, "x", None)
    )
    assert set() == covered.tests_for(Mutant("other.py", 2, 4, "x", (4, 4)))


def test_every_mutant_named_equivalent_still_exists() -> None:
    """An entry whose line was rewritten names nothing: it must be removed or renamed."""
    import tools.mutate as tool

    named = tool._equivalents()
    points = {
        (path, description, tool._code(tool.Mutant(path, 0, line, description)))
        for path in {path for path, _, _ in named}
        for line, description in mutation_points((tool.ROOT / path).read_text(encoding="utf-8"))
    }

    assert [] == [key for key in named if key not in points]
    assert all(named.values())  # each with its reason
