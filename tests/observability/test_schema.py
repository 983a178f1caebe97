"""mina.observability.schema: one order, one type and one Sentry field per key, on both outputs."""

from __future__ import annotations

from contextlib import closing
from typing import Any

import flask
import pytest
import sentry_sdk
import structlog

import mina
from mina import db
from mina.observability import context
from mina.observability.schema import CALL_KEYS, CONTEXT, CONTEXT_ORDER, HEAD_KEYS, SentryField
from mina.settings import Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import make_wav, run_jobs


def test_every_context_key_takes_its_registered_place(mina_logging: PipelineFactory) -> None:
    lines = mina_logging(send_pii=True)
    values = {spec.name: f"v-{spec.name}" for spec in CONTEXT}
    # Bound in reverse, passed in reverse: the line's order is the registry's all the same.
    structlog.contextvars.bind_contextvars(**dict(reversed(values.items())))

    structlog.get_logger("t").info("ordered", zeta=1, alpha=2)

    [line] = lines.events("ordered")
    assert [*HEAD_KEYS, *CONTEXT_ORDER, "zeta", "alpha"] == list(line)


def test_types_on_the_lines_of_a_whole_session_match_the_registry(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_logging()
    app = mina.create_app({"SENTRY_DSN": sentry_ingest.dsn, "SENTRY_TRACES_SAMPLE_RATE": "1"})

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    with closing(db.connect(app.config["MINA_DATABASE"])) as conn:
        user = db.create_user(conn, "ada")
        token = db.create_token(conn, user.id)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {token}"}
    meeting = client.post("/api/meetings", json={"title": "Standup"}, headers=auth).json
    client.post(
        f"/api/meetings/{meeting['id']}/chunks",
        data=make_wav([1000, -1000] * 800),
        headers={**auth, "Content-Type": "audio/wav"},
    )
    client.get("/api/meetings/nope", headers=auth)
    client.get("/api/meetings")  # 401: no token
    client.get("/boom")
    run_jobs(app.extensions["mina.jobs"])

    seen: dict[str, set[type]] = {}
    for line in lines.all():
        assert list(HEAD_KEYS) == list(line)[:4]
        for key, value in line.items():
            seen.setdefault(key, set()).add(type(value))
    registered: dict[str, Any] = {spec.name: spec.type for spec in CONTEXT}
    registered |= {name: spec.type for name, spec in CALL_KEYS.items()}
    wrong = {
        key: kinds
        for key, kinds in seen.items()
        if key in registered and not all(issubclass(kind, registered[key]) for kind in kinds)
    }
    assert {} == wrong
    # The session did write the keys whose meaning once differed between events.
    once_ambiguous = {"status", "duration_ms", "audio_ms", "error", "exception_type"}
    assert once_ambiguous <= seen.keys()


def test_lines_outside_a_transaction_carry_no_trace_ids(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)
    log = structlog.get_logger("t")

    log.info("outside")
    with sentry_sdk.start_transaction(name="job", op="task") as transaction:
        log.info("inside")
        with sentry_sdk.start_span(op="db") as span:
            log.info("in.span")

    [outside] = lines.events("outside")
    [inside] = lines.events("inside")
    [in_span] = lines.events("in.span")
    assert {"trace_id", "span_id"}.isdisjoint(outside)
    assert (transaction.trace_id, transaction.span_id) == (inside["trace_id"], inside["span_id"])
    assert (transaction.trace_id, span.span_id) == (in_span["trace_id"], in_span["span_id"])


@pytest.mark.parametrize("key", [spec.name for spec in CONTEXT if spec.sentry is SentryField.TAG])
def test_a_call_value_for_a_context_key_wins_on_both_outputs(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest, key: str
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)
    context.bind(**{key: "bound"})
    log = structlog.get_logger("t")

    log.error("overridden", **{key: "from-the-call"})
    log.error("as.bound")
    sentry_sdk.flush(timeout=5)

    events = {event["logentry"]["message"]: event for event in sentry_ingest.wait_for_events(2)}
    [overridden] = lines.events("overridden")
    [as_bound] = lines.events("as.bound")
    assert ("from-the-call", "from-the-call") == (
        overridden[key],
        events["overridden"]["tags"][key],
    )
    assert ("bound", "bound") == (as_bound[key], events["as.bound"]["tags"][key])


def test_a_call_value_for_the_user_wins_on_both_outputs(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)
    context.bind_user(7, username="ada")

    structlog.get_logger("t").error("acting.for", user_id=8, username="bob")
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    [line] = lines.events("acting.for")
    assert (8, "bob") == (line["user_id"], line["username"])
    assert {"id": "8", "username": "bob"} == event["user"]


def test_personal_context_is_not_bound_without_consent(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()

    context.bind(client_ip="203.0.113.9", job="reindex")
    context.bind_user(7, email="ada@example.org")
    structlog.get_logger("t").info("who")

    [line] = lines.events("who")
    assert {"user_email", "client_ip"}.isdisjoint(line)
    assert ("reindex", 7) == (line["job"], line["user_id"])


def test_flask_extension_binds_through_the_registry(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    app = flask.Flask("t")
    mina.observability.flask.Observability(app, Settings())

    @app.get("/m/<meeting_id>")
    def meeting(meeting_id: str) -> str:
        structlog.get_logger("t").info("seen")
        return "ok"

    app.test_client().get("/m/abc", headers={"User-Agent": "curl/8"})

    [seen] = lines.events("seen")
    assert ["request_id", "method", "path", "route", "meeting_id", "user_agent"] == [
        key for key in seen if key in CONTEXT_ORDER
    ]
    assert ("GET", "/m/abc", "/m/<meeting_id>", "abc") == (
        seen["method"],
        seen["path"],
        seen["route"],
        seen["meeting_id"],
    )
