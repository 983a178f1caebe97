"""docs/testing.md: its complete example runs as written, through the installed plugin."""

from __future__ import annotations

import re

import pytest

from tests.support import ROOT

EXAMPLE = re.compile(r"<!-- example: (?P<name>\S+) -->\n```python\n(?P<code>.*?)```", re.S)


def test_the_complete_example_passes(pytester: pytest.Pytester) -> None:
    [example] = EXAMPLE.finditer((ROOT / "docs" / "testing.md").read_text(encoding="utf-8"))
    pytester.path.joinpath(example["name"]).write_text(example["code"], encoding="utf-8")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", example["name"])

    result.assert_outcomes(passed=3)
