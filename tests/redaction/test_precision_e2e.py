"""What operators need survives redaction, on stdout and in Sentry (PII off).

Each case goes through the real pipeline: the JSON line a log call or a failing request
writes to stdout, and the event the local ingest receives.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import flask
import sentry_sdk
import structlog

import mina
from mina.redaction import REDACTED
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

GHP = "ghp_" + "Zq9xWv8u" * 5


class TokenExpiredError(Exception):
    """A class name holding a secret word."""


def failing_app(
    mina_logging: PipelineFactory, ingest: SentryIngest, tmp_path: Path
) -> tuple[flask.Flask, Any]:
    lines = mina_logging()
    app = mina.create_app(
        {
            "SENTRY_DSN": ingest.dsn,
            "SENTRY_TRACES_SAMPLE_RATE": "0",
            "MINA_DATABASE": str(tmp_path / "precision.sqlite3"),
        }
    )

    @app.get("/api/expired")
    def expired() -> str:
        sid = flask.request.args.get("sid", "")
        headers = {"Cookie": "session=" + sid, "X-Trace": ["cookie_out", sid]}
        hard_coded = {"upstream": "Bearer ghp_Zq9xWv8uZq9xWv8uZq9xWv8uZq9xWv8uZq9xWv8u", "page": 2}
        del hard_coded  # the line above is a secret in a source line
        raise TokenExpiredError(f"expired at 2026-12-01T10:00:00Z for user 42 ({len(headers)})")

    return app, lines


def test_exception_message_and_source_lines_are_kept(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    app, lines = failing_app(mina_logging, sentry_ingest, tmp_path)

    app.test_client().get("/api/expired", headers={"X-Forwarded-Proto": "https"})
    sentry_sdk.flush(timeout=5)

    message = "expired at 2026-12-01T10:00:00Z for user 42 (2)"
    [failed] = lines.events("request.failed")
    assert failed["exception"].endswith(f"TokenExpiredError: {message}")
    [event] = sentry_ingest.wait_for_events()
    [exc] = event["exception"]["values"]
    assert message == exc["value"]
    frame = exc["stacktrace"]["frames"][-1]
    assert "expired" == frame["function"]
    code = [*frame["pre_context"], frame["context_line"]]
    assert (
        '        headers = {"Cookie": "session=" + sid, "X-Trace": ["cookie_out", sid]}'
    ) in code
    # Only the detected secret goes from its line.
    assert f'        hard_coded = {{"upstream": "Bearer {REDACTED}", "page": 2}}' in code
    assert GHP.encode() not in b"".join(sentry_ingest.raw_bodies)
    # A proxy's protocol header stays.
    assert "https" == event["request"]["headers"]["X-Forwarded-Proto"]


def test_client_address_header_is_not_sent_without_pii(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    app, _ = failing_app(mina_logging, sentry_ingest, tmp_path)

    app.test_client().get(
        "/api/expired",
        headers={"X-Forwarded-For": "198.51.100.7", "Forwarded": "for=198.51.100.7"},
    )
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    headers = event["request"]["headers"]
    assert {REDACTED} == {headers.get("X-Forwarded-For", REDACTED), headers["Forwarded"]}
    assert b"198.51.100.7" not in b"".join(sentry_ingest.raw_bodies)


def test_stdout_keeps_remotes_loopback_and_encoded_harmless_text(
    captured_logs: Any,
) -> None:
    log = structlog.get_logger("mina.deploy")

    log.info("repo.cloned", remote="git@github.com:org/repo.git", ip="127.0.0.1")
    logging.getLogger("gunicorn.error").info("worker booted ip=%s pid=%s", "127.0.0.1", 42)
    log.info("redirect", next="%2Fcb%3Fpassword%3Dhunter2xyz%26page%3D2", title="Q3%20plan")

    [cloned] = captured_logs.events("repo.cloned")
    assert ("git@github.com:org/repo.git", "127.0.0.1") == (cloned["remote"], cloned["ip"])
    [booted] = [line for line in captured_logs.all() if "worker booted" in line["event"]]
    assert "worker booted ip=127.0.0.1 pid=42" == booted["event"]
    [redirect] = captured_logs.events("redirect")
    assert (f"%2Fcb%3Fpassword%3D{REDACTED}%26page%3D2", "Q3%20plan") == (
        redirect["next"],
        redirect["title"],
    )
