"""Request context: request id, route, user, meeting and trace on lines, events, transactions."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import flask
import pytest
import sentry_sdk
import structlog
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

import mina
from mina.observability.flask import Observability, request_id_from
from mina.testing import CapturedLogs, SentryIngest
from mina.testing.plugin import PipelineFactory
from tests import support
from tests.support import EXPLODE_LOGGER, make_user

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def app_with_sentry(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> Callable[..., tuple[flask.Flask, CapturedLogs]]:
    def build(**env: str) -> tuple[flask.Flask, CapturedLogs]:
        lines = mina_logging()
        app = support.create_app(
            {
                "SENTRY_DSN": sentry_ingest.dsn,
                "SENTRY_TRACES_SAMPLE_RATE": "1.0",
                "SENTRY_PROFILES_SAMPLE_RATE": "0",
                "MINA_DATABASE": str(tmp_path / "web.sqlite3"),
                **env,
            }
        )
        return app, lines

    return build


# --- X-Request-ID -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["abc-123", "A.b:c_d-9", "x" * 128, "0f8fad5b-d9cb-469f-a165-70867728950e"]
)
def test_valid_request_id_is_kept(value: str) -> None:
    assert (value, None) == request_id_from(value)


@pytest.mark.parametrize(
    ("value", "rejected"),
    [
        ("", ""),
        ("x" * 129, "x" * 64 + "...(129 chars)"),
        ("a\nb", "a\\nb"),
        ('"quoted"', '"quoted"'),
        ("a b", "a b"),
        ("é", "\\xe9"),
        ("y" * 10_000, "y" * 64 + "...(10000 chars)"),
    ],
)
def test_invalid_request_id_is_replaced(value: str, rejected: str) -> None:
    request_id, said = request_id_from(value)

    assert HEX32.fullmatch(request_id)
    assert rejected == said


def test_missing_request_id_is_generated() -> None:
    request_id, rejected = request_id_from(None)

    assert HEX32.fullmatch(request_id)
    assert None is rejected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_header_gives_a_safe_request_id(value: str) -> None:
    request_id, rejected = request_id_from(value)

    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", request_id)
    assert rejected is None or ("\n" not in rejected and len(rejected) <= 64 * 10 + 20)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/healthz", 200), ("/nowhere", 404), ("/api/meetings/m-1", 401), ("/boom", 500)],
)
def test_request_id_is_echoed_on_every_status(
    mina_logging: PipelineFactory, path: str, status: int
) -> None:
    lines = mina_logging()
    app = mina.create_app()

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    # Raw CR/LF cannot even be sent through a client; gunicorn's test sends them on a socket.
    hostile = 'evil"; <script>' + "z" * 10_000
    given_id = app.test_client().get(path, headers={"X-Request-ID": "keep.me-1"})
    replaced = app.test_client().get(path, headers={"X-Request-ID": hostile})

    assert (status, "keep.me-1") == (given_id.status_code, given_id.headers["X-Request-ID"])
    assert status == replaced.status_code
    assert HEX32.fullmatch(replaced.headers["X-Request-ID"])
    assert "Set-Cookie" not in replaced.headers
    finished = lines.events("request.finished")
    assert ["keep.me-1", replaced.headers["X-Request-ID"]] == [f["request_id"] for f in finished]
    [warning] = lines.events("request.request_id_rejected")
    assert warning["request_id"] == replaced.headers["X-Request-ID"]
    assert f"{hostile[:64]}...({len(hostile)} chars)" == warning["rejected"]


# --- the finished line ----------------------------------------------------------------------


def test_finished_line_and_debug_started_line(mina_logging: PipelineFactory) -> None:
    lines = mina_logging(log_level=logging.DEBUG)
    app = mina.create_app({"LOG_LEVEL": "DEBUG"})

    response = app.test_client().get("/healthz", headers={"User-Agent": "probe/1.0"})

    [started] = lines.events("request.started")
    [finished] = lines.events("request.finished")
    assert "debug" == started["level"]
    assert ("info", 200, "/healthz", "/healthz", "GET") == (
        finished["level"],
        finished["status"],
        finished["path"],
        finished["route"],
        finished["method"],
    )
    assert finished["duration_ms"] >= 0
    assert len(response.data) == finished["size"]
    assert "probe/1.0" == finished["user_agent"]
    assert "client_ip" not in finished


@pytest.mark.parametrize("batch", [True, False])
def test_a_requests_lines_reach_stdout_at_its_end_or_from_its_first_warning(
    mina_logging: PipelineFactory, monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    monkeypatch.setenv("MINA_LOG_BATCH", "1" if batch else "0")
    lines = mina_logging()
    app = mina.create_app()
    lines.clear()
    seen: list[list[str]] = []

    def view() -> str:
        log = structlog.get_logger("t.batch")
        log.info("step.one")
        seen.append([line["event"] for line in lines.all()])
        log.warning("step.slow")
        seen.append([line["event"] for line in lines.all()])
        log.info("step.two")
        seen.append([line["event"] for line in lines.all()])
        return "ok"

    app.add_url_rule("/t/batch", "batch", view)
    app.test_client().get("/t/batch")

    written = [["step.one"], ["step.one", "step.slow"], ["step.one", "step.slow", "step.two"]]
    held = [[], ["step.one", "step.slow"], ["step.one", "step.slow"]]
    assert (written if not batch else held) == seen
    assert ["step.one", "step.slow", "step.two", "request.finished"] == [
        line["event"] for line in lines.all()
    ]


def test_context_does_not_survive_the_request(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    app = mina.create_app()

    app.test_client().get("/healthz")
    structlog.get_logger().info("after.request")

    [after] = lines.events("after.request")
    assert not {"request_id", "method", "path", "route"} & set(after)


def test_client_ip_only_with_pii_consent(mina_logging: PipelineFactory) -> None:
    lines = mina_logging(send_pii=True)
    app = mina.create_app({"MINA_SEND_PII": "1"})

    app.test_client().get("/healthz", environ_base={"REMOTE_ADDR": "203.0.113.9"})

    [finished] = lines.events("request.finished")
    assert "203.0.113.9" == finished["client_ip"]


def test_proxy_headers_only_with_trusted_proxies(mina_logging: PipelineFactory) -> None:
    lines = mina_logging(send_pii=True)
    headers = {"X-Forwarded-For": "198.51.100.7"}
    environ = {"REMOTE_ADDR": "10.0.0.1"}
    mina.create_app({"MINA_SEND_PII": "1"}).test_client().get(
        "/healthz", headers=headers, environ_base=environ
    )
    mina.create_app({"MINA_SEND_PII": "1", "MINA_TRUSTED_PROXIES": "1"}).test_client().get(
        "/healthz", headers=headers, environ_base=environ
    )

    assert ["10.0.0.1", "198.51.100.7"] == [
        line["client_ip"] for line in lines.events("request.finished")
    ]


# --- user, meeting, trace: both outputs ---------------------------------------------------


def test_user_meeting_and_trace_on_lines_event_and_transaction(
    app_with_sentry: Callable[..., tuple[flask.Flask, CapturedLogs]],
    sentry_ingest: SentryIngest,
    tmp_path: Path,
) -> None:
    app, lines = app_with_sentry()
    user_id, token = make_user(str(tmp_path / "web.sqlite3"), "ada", "ada@example.org")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    meeting = client.post("/api/meetings", json={"title": "Standup"}, headers=auth).json
    incoming_trace = "771a43a4192642f0b136d5159a501700"

    response = client.get(
        f"/api/meetings/{meeting['id']}/explode",
        headers={
            **auth,
            "sentry-trace": f"{incoming_trace}-b7ad6b7169203331-1",
            "X-Request-ID": "web-explode-1",
        },
    )
    sentry_sdk.flush(timeout=5)

    assert 500 == response.status_code
    request_id = response.headers["X-Request-ID"]
    [event] = sentry_ingest.wait_for_events()
    transactions = sentry_ingest.wait_for_transactions(n=2)
    [transaction] = [t for t in transactions if t["tags"]["request_id"] == request_id]
    request_lines = [line for line in lines.all() if line.get("request_id") == request_id]

    assert {"explode.requested", "request.finished"} <= {line["event"] for line in request_lines}
    for line in request_lines:
        assert (user_id, "ada", meeting["id"]) == (
            line["user_id"],
            line["username"],
            line["meeting_id"],
        )
        assert incoming_trace == line["trace_id"]
        assert "/api/meetings/<meeting_id>/explode" == line["route"]
    for sentry_item in (event, transaction):
        assert request_id == sentry_item["tags"]["request_id"]
        assert meeting["id"] == sentry_item["tags"]["meeting_id"]
        assert {"id": str(user_id), "username": "ada"} == sentry_item["user"]
        assert incoming_trace == sentry_item["contexts"]["trace"]["trace_id"]
    assert "/api/meetings/<meeting_id>/explode" == transaction["transaction"]
    crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("category") == EXPLODE_LOGGER]
    assert [{"nonce": "web-explode-1"}] == [c["data"] for c in crumbs]
    # No consent: the email reached neither output.
    assert "ada@example.org" not in lines.text
    assert not any(b"ada@example.org" in body for body in sentry_ingest.raw_bodies)


def test_email_reaches_outputs_only_with_consent(
    app_with_sentry: Callable[..., tuple[flask.Flask, CapturedLogs]],
    sentry_ingest: SentryIngest,
    tmp_path: Path,
) -> None:
    app, lines = app_with_sentry(MINA_SEND_PII="1")
    _, token = make_user(str(tmp_path / "web.sqlite3"), "bo", "bo@example.org")

    app.test_client().post(
        "/api/meetings", json={"title": "1:1"}, headers={"Authorization": f"Bearer {token}"}
    )
    sentry_sdk.flush(timeout=5)

    [created] = lines.events("meeting.created")
    assert "bo@example.org" == created["user_email"]
    [transaction] = sentry_ingest.wait_for_transactions()
    assert "bo@example.org" == transaction["user"]["email"]


def test_a_secret_is_never_kept_as_request_id(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    app = mina.create_app()
    token = "ghp_" + "A1b2C3d4E5" * 4  # a GitHub token shape: only [A-Za-z0-9_]

    response = app.test_client().get("/healthz", headers={"X-Request-ID": token})

    assert HEX32.fullmatch(response.headers["X-Request-ID"])
    assert token not in lines.text
    assert [response.headers["X-Request-ID"]] == [
        line["request_id"] for line in lines.events("request.request_id_rejected")
    ]


# --- the finished line's level, duration and the route tag ------------------------------


def status_app() -> flask.Flask:
    """A bare app with the extension and one route answering any status."""
    app = flask.Flask("status")
    Observability(app)

    @app.get("/status/<int:code>")
    def answer(code: int) -> tuple[str, int]:
        return "", code

    return app


@pytest.mark.parametrize(
    ("code", "level"),
    [
        (200, "info"),
        (302, "info"),
        (399, "info"),
        (400, "warning"),
        (404, "warning"),
        (499, "warning"),
        (500, "error"),
        (503, "error"),
    ],
)
def test_finished_line_level_follows_the_status(
    mina_logging: PipelineFactory, code: int, level: str
) -> None:
    lines = mina_logging()

    status_app().test_client().get(f"/status/{code}")

    [finished] = lines.events("request.finished")
    assert (code, level) == (finished["status"], finished["level"])


def test_duration_is_the_time_the_request_took_in_milliseconds(
    mina_logging: PipelineFactory,
) -> None:
    lines = mina_logging()
    app = flask.Flask("slow")
    Observability(app)

    with freeze_time("2026-11-29 10:00:00") as clock:

        @app.get("/slow")
        def slow() -> str:
            clock.tick(dt.timedelta(milliseconds=1234.5))
            return "done"

        app.test_client().get("/slow")

    [finished] = lines.events("request.finished")
    assert 1234.5 == finished["duration_ms"]


def test_the_route_is_a_sentry_tag_only_when_a_rule_matched(
    app_with_sentry: Callable[..., tuple[flask.Flask, CapturedLogs]],
    sentry_ingest: SentryIngest,
) -> None:
    app, _ = app_with_sentry(SENTRY_TRACES_IGNORE_PATHS="")  # /healthz traced, for its route

    app.test_client().get("/healthz")
    app.test_client().get("/nowhere")
    sentry_sdk.flush(timeout=5)

    transactions = sentry_ingest.wait_for_transactions(n=2)
    assert [("/healthz", "/healthz"), ("generic WSGI request", None)] == [
        (t["transaction"], t["tags"].get("route")) for t in transactions
    ]


@pytest.mark.parametrize(
    ("raised", "exception_type"),
    [
        (RuntimeError("boom"), "RuntimeError"),
        (json.JSONDecodeError("bad", "{", 0), "json.decoder.JSONDecodeError"),
        (sqlite3.OperationalError("locked"), "sqlite3.OperationalError"),
    ],
)
def test_request_failed_names_the_exception_class_with_its_module(
    mina_logging: PipelineFactory, raised: Exception, exception_type: str
) -> None:
    lines = mina_logging()
    app = flask.Flask("failing")
    Observability(app)

    @app.get("/fail")
    def fail() -> str:
        raise raised

    app.test_client().get("/fail")

    [failed] = lines.events("request.failed")
    assert exception_type == failed["exception_type"]
