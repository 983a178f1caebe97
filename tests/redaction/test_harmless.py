"""The harmless corpus (`tests.redaction.harmless`): 25,000 values typical of Mina, kept."""

from __future__ import annotations

from collections import Counter

from mina.redaction import Redactor
from tests.redaction.harmless import SIZE, changed, corpus


def test_the_corpus_is_large_and_reproducible() -> None:
    values = list(corpus())

    assert len(values) >= 20_000
    assert {SIZE} == set(Counter(kind for kind, _, _ in values).values())
    assert values[:50] == list(corpus())[:50]


def test_no_harmless_value_changes() -> None:
    """As text, under its key, and as a frame local's repr: every value stays as it is
    (without PII, the strictest mode)."""
    redactor = Redactor()

    changes = [
        (kind, value, out)
        for kind, key, value in corpus()
        if (out := changed(redactor, key, value))
    ]

    assert [] == changes[:20]
