"""Sentry Logs (``SENTRY_ENABLE_LOGS=1``): context as attributes, redaction, events' limits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
import sentry_sdk
from hypothesis import given, settings
from hypothesis import strategies as st

import mina
import mina.auth
from mina import context
from mina.observability.sentry.logs import BODY_MAX, MAX_BREADTH, STRING_MAX, LogShaper
from mina.redaction import Redactor
from mina.settings import ConfigError, Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import make_user

SECRET = "sk-live-4f9a2b7c1d8e3f6a5b0c9d2e7f1a4b8c"


@pytest.fixture
def app_with_logs(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> Callable[..., flask.Flask]:
    """Mina with Sentry Logs on, sending to the local ingest, plus one route that logs."""

    def build(**env: str) -> flask.Flask:
        mina_logging()
        app = mina.create_app(
            {
                "SENTRY_DSN": sentry_ingest.dsn,
                "SENTRY_ENABLE_LOGS": "1",
                "SENTRY_TRACES_SAMPLE_RATE": "0",
                "SENTRY_PROFILES_SAMPLE_RATE": "0",
                "MINA_DATABASE": str(tmp_path / "logs.sqlite3"),
                **env,
            }
        )

        @app.post("/api/meetings/<meeting_id>/note")
        @mina.auth.login_required
        def note(meeting_id: str) -> str:
            context.bind_meeting(meeting_id, participants=4)
            log = mina.get_logger("mina.test")
            body = flask.request.get_json()
            log.debug("note.debug")
            log.info("note.written", **body)
            log.warning("note.late", minutes=3)
            return "ok"

        return app

    return build


def post_note(app: flask.Flask, tmp_path: Path, body: dict[str, Any]) -> tuple[int, str]:
    """POST a note as a fresh user; return the user's id and the response's request id."""
    user_id, token = make_user(str(tmp_path / "logs.sqlite3"), "ada")
    response = app.test_client().post(
        "/api/meetings/m-42/note", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert 200 == response.status_code
    assert sentry_sdk.flush(timeout=5) is None
    return user_id, response.headers["X-Request-ID"]


def attrs(log: dict[str, Any]) -> dict[str, Any]:
    """A Logs record's attributes as plain values."""
    return {name: attr["value"] for name, attr in log["attributes"].items()}


def received(ingest: SentryIngest, body: str, n: int = 1) -> list[dict[str, Any]]:
    """The Logs records whose body is *body*, after waiting for *n* of them."""
    ingest.wait(lambda got: n <= len([log for log in got.logs if log["body"] == body]))
    return [log for log in ingest.logs if log["body"] == body]


def test_records_carry_request_user_and_meeting(
    app_with_logs: Callable[..., flask.Flask], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    user_id, request_id = post_note(app_with_logs(), tmp_path, {"words": 12})

    [log] = received(sentry_ingest, "note.written")
    expected = {
        "request_id": request_id,
        "method": "POST",
        "path": "/api/meetings/m-42/note",
        "route": "/api/meetings/<meeting_id>/note",
        "user_id": user_id,
        "username": "ada",
        "meeting_id": "m-42",
        "words": 12,
    }
    assert expected == {key: attrs(log).get(key) for key in expected}


def test_secrets_are_redacted_in_attributes_and_body(
    app_with_logs: Callable[..., flask.Flask], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    post_note(
        app_with_logs(),
        tmp_path,
        {"api_key": SECRET, "comment": f"retry with token={SECRET}", "nested": {"pwd": SECRET}},
    )

    [log] = received(sentry_ingest, "note.written")
    shown = attrs(log)
    assert "[REDACTED]" == shown["api_key"]
    assert "retry with token=[REDACTED]" == shown["comment"]
    assert [] == [body for body in sentry_ingest.raw_bodies if SECRET.encode() in body]


def test_long_strings_and_lists_are_trimmed_like_events(
    app_with_logs: Callable[..., flask.Flask], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    post_note(
        app_with_logs(),
        tmp_path,
        {
            "transcript": "x" * 20_000,
            "levels": list(range(500)),
            "speakers": ["s" * 2_000] * 500,
            "mixed": [1, "two", {"three": list(range(50))}],
        },
    )

    [log] = received(sentry_ingest, "note.written")
    shown = attrs(log)
    assert "x" * (STRING_MAX - 3) + "..." == shown["transcript"]
    assert list(range(MAX_BREADTH)) == shown["levels"]
    assert ["s" * (STRING_MAX - 3) + "..."] * MAX_BREADTH == shown["speakers"]
    assert "[1, 'two', {'three': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}]" == shown["mixed"]
    # Sent whole, this record would be over a megabyte; the limits keep it near 13 KB.
    assert len(json.dumps(log)) < 14 * 1024


def test_records_below_sentry_logs_level_stay_out(
    app_with_logs: Callable[..., flask.Flask], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    post_note(app_with_logs(SENTRY_LOGS_LEVEL="WARNING"), tmp_path, {"words": 1})

    [late] = received(sentry_ingest, "note.late")
    assert "warn" == late["level"]
    assert [] == [log for log in sentry_ingest.logs if log["body"].startswith("note.written")]


def test_debug_records_reach_sentry_logs_when_asked(
    app_with_logs: Callable[..., flask.Flask], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    post_note(app_with_logs(SENTRY_LOGS_LEVEL="DEBUG", LOG_LEVEL="DEBUG"), tmp_path, {})

    [debug] = received(sentry_ingest, "note.debug")
    assert "debug" == debug["level"]


def test_sentry_logs_are_off_by_default(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    mina_logging()
    mina.create_app(
        {
            "SENTRY_DSN": sentry_ingest.dsn,
            "SENTRY_PROFILES_SAMPLE_RATE": "0",
            "MINA_DATABASE": str(tmp_path / "x.db"),
        }
    )
    mina.get_logger("mina.test").error("note.failed")
    sentry_sdk.flush(timeout=5)

    sentry_ingest.wait_for_events(1)
    assert [] == sentry_ingest.logs


@pytest.mark.parametrize("raw", ["LOUD", "", "20"])
def test_a_bad_sentry_logs_level_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SENTRY_LOGS_LEVEL": raw})
    assert "SENTRY_LOGS_LEVEL" == caught.value.variable


@pytest.mark.parametrize(("raw", "level"), [(None, 20), ("warning", 30), (" ERROR ", 40)])
def test_sentry_logs_level_reads_level_names(raw: str | None, level: int) -> None:
    env = {} if raw is None else {"SENTRY_LOGS_LEVEL": raw}
    assert level == Settings.from_env(env).sentry_logs_level


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    # Long strings cheaply: the limit is what matters, not their letters.
    | st.builds(str.__mul__, st.sampled_from(["x", "é", "a b "]), st.integers(0, 3000))
)
json_values = (
    scalars
    | st.lists(scalars, max_size=14)
    | st.dictionaries(st.text(max_size=5), st.lists(scalars, max_size=14), max_size=12)
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), json_values, max_size=8))
def test_every_attribute_fits_the_limits(attributes: dict[str, Any]) -> None:
    log = {"body": "b" * (BODY_MAX + 1), "attributes": attributes}

    shaped = LogShaper(Redactor())(log, {})

    assert shaped is not None
    assert BODY_MAX == len(shaped["body"])
    for value in shaped["attributes"].values():
        if isinstance(value, str):
            assert len(value) <= STRING_MAX
        elif isinstance(value, list):
            assert len(value) <= MAX_BREADTH
            assert all(len(item) <= STRING_MAX for item in value if isinstance(item, str))
        else:
            assert value is None or isinstance(value, bool | int | float)
