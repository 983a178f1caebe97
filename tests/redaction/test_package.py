"""The package as a whole: pure imports, and Mina's word lists against Sentry's."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST

from mina.redaction import REDACTED, Redactor


def test_import_loads_neither_flask_nor_sentry_nor_the_app() -> None:
    """``import mina.redaction`` is pure: usable from any tool, cheap to import."""
    code = (
        "import sys, mina.redaction; "
        "print(sorted(m for m in ('flask', 'sentry_sdk', 'mina.app') if m in sys.modules))"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    assert "[]\n" == result.stdout


@pytest.mark.parametrize("word", [w for w in DEFAULT_DENYLIST if w not in DEFAULT_PII_DENYLIST])
def test_sentry_denylist_words_are_secret_words(word: str) -> None:
    """Every word Sentry's SDK scrubs by default, Mina redacts too (checked on upgrades)."""
    assert Redactor().is_sensitive_key(word)
    assert Redactor(send_pii=True).is_sensitive_key(word)


@pytest.mark.parametrize("word", DEFAULT_PII_DENYLIST)
def test_sentry_pii_denylist_words_are_pii_words(word: str) -> None:
    """Sentry's PII words are redacted unless PII may be sent, like Sentry does."""
    assert {word: REDACTED} == Redactor().redact({word: "203.0.113.9"})
    assert {word: "203.0.113.9"} == Redactor(send_pii=True).redact({word: "203.0.113.9"})
