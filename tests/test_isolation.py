"""The suite keeps to its temporary directories, and says what a machine lacks.

- Run from a directory holding a developer's ``var/`` (a database with a user, an outbox
  with envelopes, one of them an error event still waiting), tests that build settings,
  Sentry and the database with their defaults leave it exactly as it was.
- A test that needs a program the README does not list skips, naming the Debian package,
  and in CI (``CI=true``) fails instead (`tests.support.require_system_tool`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mina.observability.sentry.outbox import Outbox

from .support import ROOT, make_user

#: Tests that use default paths: Settings(), create_app, the CLI, the outbox, Sentry.
SUBSET = (
    "tests/observability/sentry/test_options.py",
    "tests/test_cli_users.py",
    "tests/test_cli_config.py",
    "tests/test_settings.py",
)
ERROR_EVENT = (
    b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
    b'{"type":"event","length":59}\n'
    b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","level":"error"}\n'
)
TRANSACTION = (
    b'{"event_id":"0af7651916cd43dd8448eb211c80319c"}\n{"type":"transaction","length":2}\n{}\n'
)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under *root*, by relative path, with the SHA-256 of its content."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def developer_var(cwd: Path) -> Path:
    """``var/`` as `make run` left it before the instance folder: a database with a user,
    an outbox holding a pending error event and a transaction."""
    var = cwd / "var"
    var.mkdir()
    make_user(str(var / "mina.sqlite3"), "ada")
    box = Outbox(var / "sentry-outbox", max_envelopes=100, max_bytes=1 << 20)
    box.put(ERROR_EVENT, "error")
    box.put(TRANSACTION, "other")
    return var


def test_the_suite_leaves_a_developers_var_untouched(tmp_path: Path) -> None:
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    var = developer_var(cwd)
    before = tree_digest(var)
    assert 2 == len([name for name in before if name.startswith("sentry-outbox")]), before
    # The developer's shell: none of the suite's isolation variables, HOME inside tmp_path.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MINA_", "SENTRY_", "LOG_", "XDG_", "PYTEST_"))
    }
    env["HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            *(str(ROOT / path) for path in SUBSET),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert 0 == done.returncode, (done.stdout + done.stderr)[-3000:]
    assert before == tree_digest(var)
    assert ["var"] == sorted(
        path.name for path in cwd.iterdir() if path.name not in (".hypothesis",)
    )


TOOL_TEST = """
from tests.support import require_system_tool

def test_collector():
    require_system_tool("mina-no-such-collector", package="mina-collector-core")
"""


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [("", {"skipped": 1}), ("true", {"failed": 1})],
    ids=["developer", "ci"],
)
def test_a_missing_system_package_skips_but_fails_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: dict[str, int]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.syspath_prepend(str(ROOT))
    pytester.makeconftest("from tests.support import pytest_runtest_makereport\n")
    pytester.makepyfile(TOOL_TEST)

    result = pytester.runpytest_inprocess("-rsf", "-p", "no:cacheprovider")

    result.assert_outcomes(**outcome)
    result.stdout.fnmatch_lines(
        ["*requires system package mina-collector-core: mina-no-such-collector is not installed*"]
    )
