"""The app factory and its operational routes, in process and behind a real gunicorn."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog

import mina
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

from .support import Server


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_healthz_and_request_id(mina_logging: PipelineFactory, tmp_path: Path) -> None:
    lines = mina_logging()
    client = mina.create_app().test_client()

    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})

    assert 200 == response.status_code
    assert {
        "status": "ok",
        "logging": "ok",
        "dropped": 0,
        "outbox": {
            "state": "ok",
            "path": str(tmp_path / "sentry-outbox"),  # MINA_SENTRY_OUTBOX (tests/conftest.py)
            "in_memory": 0,
            "dropped": 0,
        },
        "sentry": {"state": "off"},  # no SENTRY_DSN: events kept in the outbox
    } == response.json
    assert "abc-123" == response.headers["X-Request-ID"]
    [finished] = lines.events("request.finished")
    assert ("abc-123", "GET", "/healthz", 200) == (
        finished["request_id"],
        finished["method"],
        finished["path"],
        finished["status"],
    )


def test_test_route_reports_a_message_and_an_error(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_logging()
    app = mina.create_app({"SENTRY_DSN": sentry_ingest.dsn, "SENTRY_TRACES_SAMPLE_RATE": "0"})

    body = app.test_client().get("/api/test-sentry-error").json
    sentry_sdk.flush(timeout=5)

    events = {e["event_id"]: e for e in sentry_ingest.wait_for_events(n=2)}
    assert body["sentry_enabled"]
    message, error = events[body["message_event_id"]], events[body["error_event_id"]]
    assert "Mina Sentry test message" == message["message"]
    assert "ZeroDivisionError" == error["exception"]["values"][0]["type"]
    assert body["request_id"] == error["tags"]["request_id"]


def test_test_route_is_404_outside_development(mina_logging: PipelineFactory) -> None:
    mina_logging()
    app = mina.create_app({"SENTRY_ENVIRONMENT": "production"})

    response = app.test_client().get("/api/test-sentry-error")

    assert 404 == response.status_code
    assert "not_found" == response.json["error"]
    assert response.headers["X-Request-ID"] == response.json["request_id"]


def test_unhandled_error_is_one_event_and_a_json_500(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_logging()
    app = mina.create_app({"SENTRY_DSN": sentry_ingest.dsn, "SENTRY_TRACES_SAMPLE_RATE": "0"})

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    response = app.test_client().get("/boom")
    sentry_sdk.flush(timeout=5)

    assert 500 == response.status_code
    assert response.headers["X-Request-ID"] == response.json["request_id"]
    [event] = sentry_ingest.wait_for_events()
    assert "RuntimeError" == event["exception"]["values"][0]["type"]
    assert response.json["request_id"] == event["tags"]["request_id"]
    [finished] = lines.events("request.finished")
    # An error on stdout, yet a breadcrumb for Sentry: the exception is the one event.
    assert ("error", 500, "internal_server_error") == (
        finished["level"],
        finished["status"],
        finished["error"],
    )
    assert response.json["error"] == finished["error"]
    [failed] = lines.events("request.failed")
    assert ("error", "RuntimeError", "/boom") == (
        failed["level"],
        failed["exception_type"],
        failed["path"],
    )
    assert "RuntimeError: kaboom" in failed["exception"]
    assert not [line for line in lines.all() if line["event"].startswith("Exception on")]


@pytest.mark.parametrize("status", [401, 403, 404])
@pytest.mark.parametrize(("ignored", "reported"), [(None, False), ("", True), ("500", True)])
def test_ignored_statuses_are_not_events(
    mina_logging: PipelineFactory,
    sentry_ingest: SentryIngest,
    status: int,
    ignored: str | None,
    reported: bool,
) -> None:
    from flask import abort
    from werkzeug.exceptions import HTTPException

    lines = mina_logging()
    config = {"SENTRY_DSN": sentry_ingest.dsn, "SENTRY_TRACES_SAMPLE_RATE": "0"}
    if ignored is not None:
        config["SENTRY_IGNORE_STATUS_CODES"] = ignored
    app = mina.create_app(config)

    @app.get("/deny")
    def deny() -> str:
        try:
            abort(status)
        except HTTPException:
            # Flask never reports an HTTPException itself; a logged one reaches before_send.
            structlog.get_logger().exception("access.denied")
            raise

    assert status == app.test_client().get("/deny").status_code
    sentry_sdk.capture_message("sentinel")
    sentry_sdk.flush(timeout=5)

    events = sentry_ingest.wait_for_events(n=2 if reported else 1)
    messages = [e.get("message") or e["logentry"]["message"] for e in events]
    assert (["access.denied", "sentinel"] if reported else ["sentinel"]) == sorted(messages)
    [finished] = lines.events("request.finished")
    assert ("warning", status) == (finished["level"], finished["status"])


def test_gunicorn_serves_json_logs_and_says_sentry_is_off(
    gunicorn: Callable[..., Server],
) -> None:
    server = gunicorn(workers=1, threads=2)

    status, headers, _ = get(server.url + "/healthz", {"X-Request-ID": "e2e-1"})
    lines, stderr = server.stop()

    assert (200, "e2e-1") == (status, headers["X-Request-ID"])
    events = [line["event"] for line in lines]
    assert "sentry.disabled" in events
    assert any(line["logger"].startswith("gunicorn") for line in lines)
    [finished] = [line for line in lines if line.get("request_id") == "e2e-1"]
    assert ("e2e-1", 200) == (finished["request_id"], finished["status"])
    assert "" == stderr


def test_turning_sentry_off_leaves_no_client_even_with_a_dsn_in_the_env(
    mina_logging: PipelineFactory,
    sentry_ingest: SentryIngest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mina_logging()
    monkeypatch.setenv("SENTRY_DSN", sentry_ingest.dsn)
    mina.create_app()
    assert sentry_sdk.get_client().is_active()

    mina.create_app({"SENTRY_DSN": "", "MINA_SENTRY_OUTBOX": "off"})
    sentry_sdk.capture_message("token=abcd1234secret after switching off")
    sentry_sdk.flush(timeout=2)

    assert not sentry_sdk.get_client().is_active()
    assert [] == sentry_ingest.events


def test_without_a_dsn_events_stay_in_the_outbox_even_with_a_dsn_in_the_env(
    mina_logging: PipelineFactory,
    sentry_ingest: SentryIngest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    mina_logging()
    monkeypatch.setenv("SENTRY_DSN", sentry_ingest.dsn)
    mina.create_app()

    mina.create_app({"SENTRY_DSN": ""})
    event_id = sentry_sdk.capture_message("token=abcd1234secret after switching off")
    sentry_sdk.flush(timeout=2)

    assert [] == sentry_ingest.events
    [kept] = list((tmp_path / "sentry-outbox" / "pending").iterdir())
    data = kept.read_bytes()
    assert event_id in data.decode()
    assert b"abcd1234secret" not in data


def test_create_app_again_keeps_the_sentry_client_and_logging(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    mina_logging()
    mina.create_app({"SENTRY_DSN": sentry_ingest.dsn})
    client = sentry_sdk.get_client()
    handlers = list(logging.getLogger().handlers)

    mina.create_app({"SENTRY_DSN": sentry_ingest.dsn, "MINA_DATABASE": str(tmp_path / "b.db")})

    assert client is sentry_sdk.get_client()
    assert handlers == logging.getLogger().handlers


def test_start_up_names_absolute_paths_and_old_var_data(
    mina_logging: PipelineFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MINA_DATABASE")
    monkeypatch.delenv("MINA_SENTRY_OUTBOX")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var" / "sentry-outbox").mkdir(parents=True)
    instance = tmp_path / "instance"
    lines = mina_logging()

    app = mina.create_app()

    [loaded] = lines.events("config.loaded")
    [old] = lines.events("config.old_data")
    assert str(instance / "mina.sqlite3") == loaded["database"]
    assert (str(instance), "warning") == (app.instance_path, old["level"])
    assert old["hint"].startswith(f"{tmp_path}/var/sentry-outbox hold(s) data of an older Mina")
    assert [] == [path.name for path in (tmp_path / "var" / "sentry-outbox").iterdir()]
