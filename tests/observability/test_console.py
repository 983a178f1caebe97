"""mina.observability.console: the readable lines of LOG_FORMAT=console and `mina logs`."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
import structlog

from mina.observability.console import ConsoleRenderer
from mina.observability.formatters import ConsoleFormatter
from mina.settings import Settings, default_log_format
from mina.testing.plugin import PipelineFactory

LINE: dict[str, Any] = {
    "timestamp": "2026-11-29T10:00:01.250113Z",
    "level": "info",
    "logger": "mina.api",
    "event": "meeting.created",
    "request_id": "5f0c1a2b3c4d5e6f7a8b9c0d1e2f3a4b",
    "method": "POST",
    "path": "/api/meetings",
    "route": "/api/meetings",
    "user_id": 7,
    "username": "ada",
    "meeting_id": "9b2e1a2b3c4d5e6f7a8b9c0d1e2f3a4b",
    "title": "Standup",
    "seats": 3,
}


def test_call_keys_come_before_context_on_one_line() -> None:
    assert (
        "info     2026-11-29 10:00:01.250 meeting.created        title=Standup seats=3"
        " [mina.api] request_id=5f0c1a2b… method=POST path=/api/meetings user_id=7"
        " username=ada meeting_id=9b2e1a2b…"
    ) == ConsoleRenderer(width=None).render(LINE)


def test_what_does_not_fit_continues_under_the_event() -> None:
    assert [
        "info     2026-11-29 10:00:01.250 meeting.created        title=Standup seats=3 [mina.api]",
        " " * 33 + "request_id=5f0c1a2b… method=POST path=/api/meetings user_id=7",
        " " * 33 + "username=ada meeting_id=9b2e1a2b…",
    ] == ConsoleRenderer(width=100).render(LINE).splitlines()


def test_none_is_left_out_and_long_values_are_cut_in_the_middle() -> None:
    line = {"level": "warning", "event": "x", "note": None, "body": "a" * 50 + "b" * 50}
    assert f"warning  x{' ' * 21} body={'a' * 30}…{'b' * 29}" == ConsoleRenderer().render(line)


def test_values_that_need_quotes_are_quoted() -> None:
    line = {"event": "x", "a": "two words", "b": "x=y", "c": "line\nbreak", "d": [1, {"k": None}]}
    assert (
        '         x                      a="two words" b="x=y" c="line\\nbreak" d=[1,{"k":null}]'
        == (ConsoleRenderer().render(line))
    )


def test_exceptions_follow_multi_line_and_cannot_drive_the_terminal() -> None:
    line = {
        "level": "error",
        "event": "boom",
        "exception": 'Traceback (most recent call last):\n  File "x.py"\nValueError: \x1b[2J\n',
    }
    assert [
        "error    boom",
        "Traceback (most recent call last):",
        '  File "x.py"',
        "ValueError: \\x1b[2J",
    ] == ConsoleRenderer().render(line).splitlines()


def test_colours_only_when_asked() -> None:
    line = {"level": "error", "event": "boom", "n": 1, "request_id": "r1"}
    assert (
        "\x1b[31;1merror   \x1b[0m \x1b[1mboom                  \x1b[0m"
        " \x1b[36mn\x1b[0m=\x1b[35m1\x1b[0m \x1b[2mrequest_id=r1\x1b[0m"
    ) == ConsoleRenderer(colors=True).render(line)


def test_the_console_formatter_renders_the_redacted_line(
    mina_logging: PipelineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    lines = mina_logging(log_format="console")
    structlog.get_logger("mina.x").info("meeting.created", password="hunter2", seats=3, note=None)

    text = lines.text
    assert text.startswith("info     ")
    assert text.endswith(" meeting.created        password=[REDACTED] seats=3 [mina.x]\n")


def test_the_console_formatter_renders_foreign_records_and_exceptions() -> None:
    formatter = ConsoleFormatter(colors=False, width=80)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        record = logging.LogRecord("gunicorn.error", logging.ERROR, "", 0, "failed", (), None)
        record.exc_info = sys.exc_info()
    lines = formatter.format(record).splitlines()
    assert lines[0].startswith("error    ")
    assert lines[0].endswith(" failed                 [gunicorn.error]")
    assert "Traceback (most recent call last):" == lines[1]
    assert "ZeroDivisionError: division by zero" == lines[-1]


@pytest.mark.parametrize(
    ("environment", "tty", "expected"),
    [
        ("development", True, "console"),
        ("development", False, "json"),
        ("production", True, "json"),
    ],
)
def test_console_is_the_default_on_a_terminal_in_development(
    monkeypatch: pytest.MonkeyPatch, environment: str, tty: bool, expected: str
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: tty)
    assert expected == default_log_format(environment)
    assert expected == Settings.from_env({"SENTRY_ENVIRONMENT": environment}).log_format
    assert (
        "json"
        == Settings.from_env({"SENTRY_ENVIRONMENT": environment, "LOG_FORMAT": "json"}).log_format
    )
