"""What Sentry gets of a failing request's body, and the ``os`` context, at the local ingest.

Request bodies reach Sentry only with ``MINA_SEND_PII=1``, then redacted; without it no
byte of the body is in anything received. Every event carries the operating system.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
import sentry_sdk

import mina
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

PRIVATE = "my private notes about the merger"
SECRET = "hunter2-Zq9xW"


@pytest.fixture
def failing_app(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> Callable[..., flask.Flask]:
    """Mina's app, sending to the local ingest, plus a POST route that reads its body and fails."""

    def build(**env: str) -> flask.Flask:
        mina_logging()
        app = mina.create_app(
            {
                "SENTRY_DSN": sentry_ingest.dsn,
                "SENTRY_TRACES_SAMPLE_RATE": "0",
                "MINA_DATABASE": str(tmp_path / "sentry-data.sqlite3"),
                **env,
            }
        )

        @app.post("/fail")
        def fail() -> str:
            flask.request.get_json(silent=True)
            flask.request.form.to_dict()
            raise RuntimeError("failed after reading the body")

        return app

    return build


def _send(app: flask.Flask, kind: str) -> None:
    fields = {"comment": PRIVATE, "password": SECRET}
    client = app.test_client()
    response = (
        client.post("/fail", json=fields) if kind == "json" else client.post("/fail", data=fields)
    )
    assert 500 == response.status_code
    sentry_sdk.flush(timeout=5)


@pytest.mark.parametrize("kind", ["json", "form"])
def test_without_pii_no_byte_of_the_body_reaches_sentry(
    failing_app: Callable[..., flask.Flask], sentry_ingest: SentryIngest, kind: str
) -> None:
    _send(failing_app(), kind)

    [event] = sentry_ingest.wait_for_events()
    assert "RuntimeError" == event["exception"]["values"][0]["type"]
    assert "data" not in event["request"]
    for body in sentry_ingest.raw_bodies:
        assert PRIVATE.encode() not in body
        assert SECRET.encode() not in body
        assert b"comment" not in body


@pytest.mark.parametrize("kind", ["json", "form"])
def test_with_pii_the_body_reaches_sentry_redacted(
    failing_app: Callable[..., flask.Flask], sentry_ingest: SentryIngest, kind: str
) -> None:
    _send(failing_app(MINA_SEND_PII="1"), kind)

    [event] = sentry_ingest.wait_for_events()
    assert {"comment": PRIVATE, "password": "[REDACTED]"} == event["request"]["data"]
    assert not any(SECRET.encode() in body for body in sentry_ingest.raw_bodies)


def _os(event: dict[str, Any]) -> dict[str, Any]:
    os_context: dict[str, Any] = event["contexts"]["os"]
    return os_context


def test_events_carry_the_operating_system(
    failing_app: Callable[..., flask.Flask], sentry_ingest: SentryIngest
) -> None:
    _send(failing_app(), "json")
    sentry_sdk.capture_message("a message outside any request")
    sentry_sdk.flush(timeout=5)

    events = sentry_ingest.wait_for_events(n=2)
    assert [_os(events[0])] * 2 == [_os(event) for event in events]
    context = _os(events[0])
    assert platform.release() == context["kernel_version"]
    assert platform.platform() == context["raw"]
    expected_name = (
        platform.freedesktop_os_release().get("NAME", "Linux")
        if platform.system() == "Linux"
        else platform.system()
    )
    assert expected_name == context["name"]
    assert context["version"]
    assert "runtime" in events[0]["contexts"]  # the SDK's own, kept
