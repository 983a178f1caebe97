"""Uncaught exceptions and warnings leave the process as one redacted JSON line each."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mina.observability import process_hooks
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import ROOT

SECRET = "abc123def456ghi789"


def run(
    tmp_path: Path, body: str, **variables: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run *body* as a script file (so tracebacks name it); return the result and its path."""
    path = tmp_path / "crash.py"
    path.write_text(textwrap.dedent(body).lstrip())
    result = subprocess.run(
        [sys.executable, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), **variables},
    )
    return result, str(path)


def lines_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in json.loads(line).items() if key != "timestamp"}
        for line in result.stdout.splitlines()
    ]


def test_uncaught_exception_is_one_redacted_line_and_exits_1(tmp_path: Path) -> None:
    result, path = run(
        tmp_path,
        f"""
        from mina.logging_config import configure_logging

        configure_logging()
        raise RuntimeError("upload failed: token={SECRET}")
        """,
    )

    assert 1 == result.returncode
    assert "" == result.stderr  # no raw traceback, no secret, by any stream
    assert [
        {
            "level": "critical",
            "logger": "mina.process",
            "event": "process.uncaught_exception",
            "exception_type": "RuntimeError",
            "exception": "Traceback (most recent call last):\n"
            f'  File "{path}", line 4, in <module>\n'
            '    raise RuntimeError("upload failed: token=[REDACTED]")\n'
            "RuntimeError: upload failed: token=[REDACTED]",
        }
    ] == lines_of(result)


def test_uncaught_exception_in_a_thread_is_one_line_and_the_process_goes_on(
    tmp_path: Path,
) -> None:
    result, path = run(
        tmp_path,
        f"""
        import threading
        from mina.logging_config import configure_logging, get_logger

        def work():
            raise ValueError("password={SECRET}")

        configure_logging()
        thread = threading.Thread(target=work, name="chunk-worker")
        thread.start()
        thread.join()
        get_logger("mina.test").info("after")
        """,
    )

    [line, after] = lines_of(result)
    assert (0, "") == (result.returncode, result.stderr)
    assert {"level": "info", "logger": "mina.test", "event": "after"} == after
    assert {
        "level": "error",
        "logger": "mina.process",
        "event": "thread.uncaught_exception",
        "exception_type": "ValueError",
        "thread_name": "chunk-worker",
    } == {key: value for key, value in line.items() if key != "exception"}
    assert line["exception"].endswith(
        f'  File "{path}", line 5, in work\n'
        '    raise ValueError("password=[REDACTED]")\n'
        "ValueError: password=[REDACTED]"
    )
    assert SECRET not in result.stdout


def test_a_warning_is_one_redacted_line(tmp_path: Path) -> None:
    result, path = run(
        tmp_path,
        f"""
        import warnings
        from mina.logging_config import configure_logging

        configure_logging()
        warnings.warn("retrying with api_key={SECRET}", UserWarning)
        """,
    )

    assert (0, "") == (result.returncode, result.stderr)
    assert [
        {
            "level": "warning",
            "logger": "mina.process",
            "event": "python.warning",
            "category": "UserWarning",
            "text": "retrying with api_key=[REDACTED]",
            "location": f"{path}:5",
        }
    ] == lines_of(result)


def test_uncaught_exception_reaches_sentry_once(
    tmp_path: Path, sentry_ingest: SentryIngest
) -> None:
    result, _ = run(
        tmp_path,
        f"""
        import mina

        mina.create_app()
        raise RuntimeError("upload failed: token=" + "{SECRET[:6]}" + "{SECRET[6:]}")
        """,
        SENTRY_DSN=sentry_ingest.dsn,
        SENTRY_TRACES_SAMPLE_RATE="0",
        SENTRY_PROFILES_SAMPLE_RATE="0",
    )

    # One event: Sentry's own excepthook (it wraps Mina's) and Mina's critical line
    # report the same exception, which the SDK sends once. The process has exited.
    [event] = sentry_ingest.events
    assert (1, "") == (result.returncode, result.stderr)
    assert ["RuntimeError"] == [value["type"] for value in event["exception"]["values"]]
    assert "upload failed: token=[REDACTED]" == event["exception"]["values"][0]["value"]
    assert SECRET not in json.dumps(event)


@pytest.fixture
def original_hooks() -> Iterator[tuple[Any, Any, Any]]:
    """Python's hooks as they are without Mina's; put back afterwards."""
    process_hooks.uninstall()
    original = (sys.excepthook, threading.excepthook, warnings.showwarning)
    yield original
    process_hooks.uninstall()


def test_configure_installs_the_hooks_once_and_uninstall_restores_them(
    mina_logging: PipelineFactory, original_hooks: tuple[Any, Any, Any]
) -> None:
    mina_logging()
    installed = (sys.excepthook, threading.excepthook, warnings.showwarning)
    mina_logging()  # forced again: the same hooks, not hooks wrapping hooks

    assert installed == (sys.excepthook, threading.excepthook, warnings.showwarning)
    assert not set(installed) & set(original_hooks)
    process_hooks.uninstall()
    assert original_hooks == (sys.excepthook, threading.excepthook, warnings.showwarning)


def test_recorded_warnings_are_still_recorded(
    mina_logging: PipelineFactory, original_hooks: tuple[Any, Any, Any]
) -> None:
    lines = mina_logging()

    with pytest.warns(UserWarning, match="recorded"):
        warnings.warn("recorded", UserWarning, stacklevel=1)

    assert [] == lines.events("python.warning")


def test_a_thread_hook_installed_before_still_runs(
    mina_logging: PipelineFactory, original_hooks: tuple[Any, Any, Any]
) -> None:
    seen: list[str] = []
    threading.excepthook = lambda args: seen.append(args.exc_type.__name__)
    try:
        lines = mina_logging()
        thread = threading.Thread(target=lambda: logging.getLogger("x").info(1 / 0))
        thread.start()
        thread.join()
    finally:
        process_hooks.uninstall()
        threading.excepthook = original_hooks[1]

    [line] = lines.events("thread.uncaught_exception")
    assert ["ZeroDivisionError"] == seen
    assert "ZeroDivisionError" == line["exception_type"]
