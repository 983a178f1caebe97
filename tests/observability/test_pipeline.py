"""mina.observability.pipeline: the first use of Mina's API configures the pipeline itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mina.testing import SentryIngest

_SCRIPT = textwrap.dedent(
    """
    import mina
    from mina import context

    log = mina.get_logger("script")
    context.bind_user(7, username="ada", email="ada@example.org")
    context.bind_meeting("m-1", participants=4)
    log.info("transcript.ready", words=1234, api_key="sk-proj-abcdefghijklmnopqrstuvwxyz0123")
    log.error("transcription.failed", provider="x", note="token=abc123secret")
    """
)


def _run(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "MINA_", "LOG_"))}
    clean.update(MINA_DATABASE=str(tmp_path / "mina.sqlite3"), **env)
    return subprocess.run(
        [sys.executable, "-c", script],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_plain_script_gets_redacted_json_and_sentry(
    tmp_path: Path, sentry_ingest: SentryIngest
) -> None:
    done = _run(tmp_path, _SCRIPT, SENTRY_DSN=sentry_ingest.dsn, SENTRY_TRACES_SAMPLE_RATE="0")

    assert 0 == done.returncode, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    by_event = {line["event"]: line for line in lines}
    assert {
        "timestamp": by_event["transcript.ready"]["timestamp"],
        "level": "info",
        "logger": "script",
        "event": "transcript.ready",
        "user_id": 7,
        "username": "ada",
        "meeting_id": "m-1",
        "words": 1234,
        "api_key": "[REDACTED]",
    } == by_event["transcript.ready"]
    assert "token=[REDACTED]" == by_event["transcription.failed"]["note"]
    assert "sentry.initialized" in by_event
    for secret in ("sk-proj-", "abc123secret", "ada@example.org"):
        assert secret not in done.stdout
    [event] = sentry_ingest.wait_for_events()
    assert "transcription.failed" == event["logentry"]["message"]
    assert {"id": "7", "username": "ada"} == event["user"]
    assert "m-1" == event["tags"]["meeting_id"]
    for secret in (b"sk-proj-", b"abc123secret", b"ada@example.org"):
        assert all(secret not in body for body in sentry_ingest.raw_bodies)


def test_a_bad_variable_is_said_once_and_defaults_apply(tmp_path: Path) -> None:
    done = _run(tmp_path, _SCRIPT, SENTRY_TRACES_SAMPLE_RATE="2")

    assert 0 == done.returncode
    assert [
        "mina: configuration error: SENTRY_TRACES_SAMPLE_RATE='2' is invalid: out of range;"
        " expected 0.0 to 1.0; using defaults"
    ] == done.stderr.splitlines()
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert ["sentry.disabled", "transcript.ready", "transcription.failed"] == events
