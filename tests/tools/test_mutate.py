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
