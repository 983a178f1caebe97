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
    clean.update(MINA_INSTANCE_PATH=str(tmp_path / "instance"), **env)
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


def test_a_bad_variable_is_said_once_and_only_it_falls_back(tmp_path: Path) -> None:
    done = _run(tmp_path, _SCRIPT, SENTRY_TRACES_SAMPLE_RATE="2", SENTRY_ENVIRONMENT="staging")

    assert 0 == done.returncode
    assert [
        "mina: configuration error: SENTRY_TRACES_SAMPLE_RATE='2' is invalid: out of range;"
        " expected 0.0 to 1.0; SENTRY_TRACES_SAMPLE_RATE ignored, its default applies"
        " (the other settings stand)"
    ] == done.stderr.splitlines()
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert ["sentry.disabled", "transcript.ready", "transcription.failed"] == events


def test_a_typo_in_one_variable_keeps_sentry_on(
    tmp_path: Path, sentry_ingest: SentryIngest
) -> None:
    done = _run(
        tmp_path, _SCRIPT, LOG_LEVEL="verbose", SENTRY_DSN=sentry_ingest.dsn, LOG_FORMAT="json"
    )

    assert 0 == done.returncode, done.stderr
    assert [
        "mina: configuration error: LOG_LEVEL='verbose' is invalid: expected DEBUG, INFO,"
        " WARNING, ERROR or CRITICAL; LOG_LEVEL ignored, its default applies (the other"
        " settings stand)"
    ] == done.stderr.splitlines()
    lines = {json.loads(line)["event"]: json.loads(line) for line in done.stdout.splitlines()}
    assert f"http://127.0.0.1:{sentry_ingest.port}/1" == lines["sentry.initialized"]["ingest"]
    [event] = sentry_ingest.wait_for_events()
    assert "transcription.failed" == event["logentry"]["message"]


def test_a_bad_logging_yaml_in_a_script_falls_back_to_the_packaged_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nhandlers: {x: {class: no.such.Handler}}\nroot: {handlers: [x]}\n")
    done = _run(tmp_path, _SCRIPT, MINA_LOGGING_CONFIG=str(bad))

    assert 0 == done.returncode, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"mina: configuration error: MINA_LOGGING_CONFIG='{bad}' is invalid")
    assert line.endswith("; the packaged logging.yaml applies instead")
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert ["sentry.disabled", "transcript.ready", "transcription.failed"] == events


def test_an_event_from_a_script_has_no_subprocess_breadcrumb(
    tmp_path: Path, sentry_ingest: SentryIngest
) -> None:
    # platform.platform() ran `uname -p`, which the SDK records as a subprocess breadcrumb.
    done = _run(tmp_path, _SCRIPT, SENTRY_DSN=sentry_ingest.dsn)

    assert 0 == done.returncode, done.stderr
    [event] = sentry_ingest.wait_for_events()
    crumbs = [crumb.get("category") for crumb in event["breadcrumbs"]["values"]]
    assert "subprocess" not in crumbs
    assert event["contexts"]["os"]["raw"]  # the one-line description is still there
