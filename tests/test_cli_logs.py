"""``mina logs``: JSON lines for people; filters; non-JSON lines byte for byte; --follow."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mina import cli

REQUEST = "5f0c1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
MEETING = "9b2e1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
LINES: list[dict[str, Any]] = [
    {
        "timestamp": "2026-11-29T10:00:00.000100Z",
        "level": "debug",
        "logger": "mina.db",
        "event": "db.connected",
    },
    {
        "timestamp": "2026-11-29T10:00:01.250113Z",
        "level": "info",
        "logger": "mina.api",
        "event": "meeting.created",
        "request_id": REQUEST,
        "method": "POST",
        "path": "/api/meetings",
        "route": "/api/meetings",
        "user_id": 7,
        "username": "ada",
        "meeting_id": MEETING,
        "title": "Standup",
        "note": None,
    },
    {
        "timestamp": "2026-11-29T10:00:02.000000Z",
        "level": "error",
        "logger": "mina.audio",
        "event": "chunk.failed",
        "meeting_id": MEETING,
        "chunk_id": 3,
        "exception": 'Traceback (most recent call last):\n  File "a.py", line 1\n'
        "ValueError: bad wav",
    },
]
RENDERED = [
    "debug    2026-11-29 10:00:00.000 db.connected           [mina.db]",
    "info     2026-11-29 10:00:01.250 meeting.created        title=Standup [mina.api]"
    " request_id=5f0c1a2b… method=POST path=/api/meetings user_id=7 username=ada"
    " meeting_id=9b2e1a2b…",
    "error    2026-11-29 10:00:02.000 chunk.failed           chunk_id=3 [mina.audio]"
    " meeting_id=9b2e1a2b…\n"
    "Traceback (most recent call last):\n"
    '  File "a.py", line 1\n'
    "ValueError: bad wav",
]
STDIN = b"".join(json.dumps(line).encode() + b"\n" for line in LINES)


def logs(*args: str, stdin: bytes = STDIN) -> Result:
    """Run ``mina logs ARGS`` in process with *stdin*."""
    return CliRunner().invoke(cli.main, ["logs", *args], input=stdin)


def test_renders_each_line_for_people() -> None:
    result = logs()
    assert (0, "\n".join(RENDERED) + "\n") == (result.exit_code, result.stdout)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--level", "info"), RENDERED[1:]),
        (("--level", "ERROR"), RENDERED[2:]),
        (("--request-id", REQUEST), RENDERED[1:2]),
        (("--request-id", "5f0c1a2b"), RENDERED[1:2]),
        (("--meeting", "9b2e"), RENDERED[1:]),
        (("--user", "7"), RENDERED[1:2]),
        (("--user", "ada"), RENDERED[1:2]),
        (("--user", "grace"), []),
        (("--meeting", "9b2e", "--level", "error"), RENDERED[2:]),
    ],
)
def test_filters(args: tuple[str, ...], expected: list[str]) -> None:
    result = logs(*args)
    assert (0, "".join(line + "\n" for line in expected)) == (result.exit_code, result.stdout)


def test_files_in_order_and_non_json_untouched(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_bytes(b"[2026] booting \xff\xfe not utf-8\n" + STDIN[: STDIN.index(b"\n") + 1])
    second.write_bytes(b'["a JSON list"]\n\n{"level": "info", "event": "last"}')
    result = logs(str(first), str(second))
    assert (
        b"[2026] booting \xff\xfe not utf-8\n"
        + RENDERED[0].encode()
        + b'\n["a JSON list"]\n\ninfo     last\n'
    ) == result.stdout_bytes


def test_colours_when_asked() -> None:
    result = logs("--color", stdin=b'{"level": "warning", "event": "slow", "ms": 900}\n')
    assert (
        "\x1b[33;1mwarning \x1b[0m \x1b[1mslow                  \x1b[0m"
        " \x1b[36mms\x1b[0m=\x1b[35m900\x1b[0m\n"
    ) == result.stdout


def test_wraps_at_the_width_asked() -> None:
    result = logs("--width", "80", stdin=STDIN.splitlines(keepends=True)[1])
    assert [
        "info     2026-11-29 10:00:01.250 meeting.created        title=Standup [mina.api]",
        " " * 26 + "request_id=5f0c1a2b… method=POST path=/api/meetings",
        " " * 26 + "user_id=7 username=ada meeting_id=9b2e1a2b…",
    ] == result.stdout.splitlines()


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_KNOWN = st.sampled_from(
    ["timestamp", "level", "logger", "event", "request_id", "exception", "route", "path"]
)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KNOWN | st.text(), _JSON, max_size=8))
def test_any_json_object_renders(line: dict[str, Any]) -> None:
    result = logs("--width", "60", stdin=json.dumps(line).encode() + b"\n")
    assert 0 == result.exit_code, result.output
    assert result.stdout_bytes.endswith(b"\n")
    assert b"\x1b" not in result.stdout_bytes  # no colour, and no escape from the data


def test_an_escape_in_the_level_is_shown_not_sent_to_the_terminal() -> None:
    result = logs("--width", "60", stdin=b'{"level": "\\u001b[2J"}\n')
    assert (0, '"\\u001b[2j"\n') == (result.exit_code, result.stdout)


def _json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary().map(lambda b: b.replace(b"\n", b"")), min_size=1), st.booleans())
def test_non_json_passes_through_byte_for_byte(lines: list[bytes], final_newline: bool) -> None:
    lines = [line for line in lines if not _json_object(line)]
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    result = logs("--level", "error", stdin=data)
    assert (0, data) == (result.exit_code, result.stdout_bytes)


def _readline(stream: IO[bytes], timeout: float = 10.0) -> bytes:
    """One line from a subprocess's stdout, failing after *timeout* seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no output in time"
    return stream.readline()


def _start(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mina", "logs", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_real_process_reads_a_pipe_line_by_line() -> None:
    process = _start(stdin=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        for line, rendered in zip(STDIN.splitlines(keepends=True)[:2], RENDERED, strict=False):
            process.stdin.write(line)
            process.stdin.flush()  # the next line is not written before this one is shown
            assert rendered.encode() + b"\n" == _readline(process.stdout)
        process.stdin.close()
        assert (0, b"") == (process.wait(timeout=10), process.stderr.read())  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait(timeout=5)


def test_follow_reads_a_growing_and_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "mina.log"
    log.write_bytes(STDIN.splitlines(keepends=True)[0])
    process = _start("--follow", str(log))
    assert process.stdout is not None
    try:
        assert RENDERED[0].encode() + b"\n" == _readline(process.stdout)
        with log.open("ab") as stream:
            stream.write(b'{"level": "info", "event": "gr')  # half a line: wait for the rest
            stream.flush()
            time.sleep(0.5)
            stream.write(b'own"}\n')
        assert b"info     grown\n" == _readline(process.stdout)
        os.rename(log, tmp_path / "mina.log.1")
        log.write_bytes(b'{"level": "info", "event": "rotated"}\n')
        assert b"info     rotated\n" == _readline(process.stdout)
        process.send_signal(signal.SIGINT)  # Ctrl-C: the way out of --follow
        assert 0 == process.wait(timeout=10)
    finally:
        process.kill()
        process.wait(timeout=5)
