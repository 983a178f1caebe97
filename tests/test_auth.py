"""mina.auth: bearer tokens through Flask-Login, on a small app with a real database."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import flask
import pytest
import sentry_sdk
import structlog

from mina import auth, db
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory


@pytest.fixture
def app(tmp_path: Path) -> flask.Flask:
    """An app with the database, token auth and one protected route."""
    app = flask.Flask(__name__)
    app.config.update(TESTING=True, MINA_DATABASE=str(tmp_path / "mina.sqlite3"))
    db.init_app(app)
    auth.init_app(app)

    @app.get("/whoami")
    @auth.login_required
    def whoami() -> dict[str, Any]:
        user = auth.current_user()
        return {
            "user": [user.id, user.username, user.email],
            "log_context": structlog.contextvars.get_contextvars(),
            "sentry_event": sentry_sdk.capture_message("whoami"),
        }

    return app


@pytest.fixture
def token(app: flask.Flask) -> str:
    """A token of user "ada" (ada@example.org)."""
    with closing(db.connect(app.config["MINA_DATABASE"])) as conn:
        return db.create_token(conn, db.create_user(conn, "ada", "ada@example.org").id)


def test_valid_token_authenticates_and_binds_the_user(
    app: flask.Flask, token: str, mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)
    response = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert 200 == response.status_code
    body = response.get_json()
    assert [1, "ada", "ada@example.org"] == body["user"]
    assert {"user_id": 1, "username": "ada"} == body["log_context"]
    sentry_sdk.flush(timeout=5)
    [event] = sentry_ingest.wait_for_events()
    assert (body["sentry_event"], {"id": "1", "username": "ada"}) == (
        event["event_id"],
        event["user"],
    )


def test_email_is_bound_only_when_pii_is_allowed(
    app: flask.Flask, token: str, mina_logging: PipelineFactory
) -> None:
    mina_logging(send_pii=True)
    response = app.test_client().get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert "ada@example.org" == response.get_json()["log_context"]["user_email"]


def test_scheme_is_case_insensitive(app: flask.Flask, token: str) -> None:
    response = app.test_client().get("/whoami", headers={"Authorization": f"bearer {token}"})
    assert 200 == response.status_code


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer mina_not-a-real-token"},
        {"Authorization": "Basic YWRhOnNlY3JldA=="},
        {"Authorization": "Token mina_x"},
        {"Authorization": "garbage"},
    ],
    ids=["missing", "empty", "blank", "unknown", "basic", "other-scheme", "malformed"],
)
def test_without_a_valid_token_answers_401_json(
    app: flask.Flask, token: str, headers: dict[str, str]
) -> None:
    response = app.test_client().get("/whoami", headers=headers)
    assert 401 == response.status_code
    assert 'Bearer realm="mina"' == response.headers["WWW-Authenticate"]
    assert {
        "error": "unauthorized",
        "message": "a valid API token is required: send 'Authorization: Bearer <token>'",
        "request_id": None,
    } == response.get_json()
    assert {} == structlog.contextvars.get_contextvars()


def test_401_carries_the_request_id(app: flask.Flask) -> None:
    @app.before_request
    def set_request_id() -> None:
        flask.g.request_id = "req-123"

    assert "req-123" == app.test_client().get("/whoami").get_json()["request_id"]


def test_a_remember_cookie_is_ignored(app: flask.Flask, token: str) -> None:
    client = app.test_client()
    client.set_cookie("remember_token", "1|forged")
    response = client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert 200 == response.status_code


def test_current_user_outside_login_required_is_an_error(app: flask.Flask) -> None:
    with (
        app.test_request_context("/"),
        pytest.raises(RuntimeError, match="no authenticated user"),
    ):
        auth.current_user()
