"""mina.observability.sentry.options: the options and hooks init_sentry gives the SDK."""

from __future__ import annotations

import flask
import sentry_sdk
import structlog

import mina
from mina.logging_config import configure_logging
from mina.observability.sentry import close_sentry, init_sentry
from mina.observability.sentry.options import traces_sampler
from mina.settings import Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import SECRET, flush


def test_no_sentry_event_for_ignored_http_status(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    from werkzeug.exceptions import Forbidden, InternalServerError, NotFound

    mina_sentry(traces_sample_rate=0.0)
    log = structlog.get_logger()
    for exc in (NotFound(), Forbidden(), InternalServerError()):
        log.error("http.error", exc_info=exc)
    flush()

    [event] = sentry_ingest.wait_for_events()
    assert "InternalServerError" == event["exception"]["values"][0]["type"]


def test_sentry_initialized_line_names_no_key(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=0.0, sentry_environment="staging")

    [line] = lines.events("sentry.initialized")
    key = sentry_ingest.dsn.split("//")[1].split("@")[0]
    assert key not in lines.text
    assert "staging" == line["environment"]
    assert f"http://127.0.0.1:{sentry_ingest.port}/1" == line["ingest"]
    assert 0.0 == line["traces_sample_rate"]


def test_sentry_disabled_says_why(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    init_sentry(Settings(), configure_logging(Settings()))

    [line] = lines.events("sentry.disabled")
    assert "SENTRY_DSN is not set" == line["reason"]


def test_breadcrumbs_not_from_the_hook_are_redacted_in_before_send(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)
    structlog.get_logger("mina.crumbs").info("step.one", api_key=SECRET)

    sentry_sdk.capture_event(
        {
            "message": "hand made",
            "breadcrumbs": {
                "values": [{"message": f"token={SECRET}", "data": {"password": SECRET, "n": 1}}]
            },
        }
    )
    flush()

    [event] = sentry_ingest.wait_for_events()
    crumbs = event["breadcrumbs"]["values"]
    assert {"password": "[REDACTED]", "n": 1} in [crumb.get("data") for crumb in crumbs]
    assert "token=[REDACTED]" in [crumb.get("message") for crumb in crumbs]
    assert {"api_key": "[REDACTED]"} in [crumb.get("data") for crumb in crumbs]
    assert not any(SECRET.encode() in body for body in sentry_ingest.raw_bodies)


def test_close_sentry_flushes_and_lets_the_same_settings_start_again(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_logging()
    settings = Settings(sentry_dsn=sentry_ingest.dsn, traces_sample_rate=0.0)
    redactor = configure_logging(settings)
    assert init_sentry(settings, redactor)
    sentry_sdk.capture_message("before close")

    close_sentry()  # no flush() first: closing sends what is pending

    assert ["before close"] == [e["message"] for e in sentry_ingest.wait_for_events()]
    assert not sentry_sdk.get_client().is_active()
    assert init_sentry(settings, redactor)  # not "already initialised" with a closed client
    sentry_sdk.capture_message("after restart")
    flush()
    assert ["before close", "after restart"] == [
        e["message"] for e in sentry_ingest.wait_for_events(n=2)
    ]


def _app_tracing_everything(ingest: SentryIngest, **env: str) -> flask.Flask:
    return mina.create_app(
        {
            "SENTRY_DSN": ingest.dsn,
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "SENTRY_PROFILES_SAMPLE_RATE": "0",
            **env,
        }
    )


def test_health_checks_are_not_traced_by_default(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_logging()
    client = _app_tracing_everything(sentry_ingest).test_client()

    for _ in range(3):
        assert 200 == client.get("/healthz").status_code
    assert 404 == client.get("/no-such-page").status_code
    flush()

    transactions = sentry_ingest.wait_for_transactions()
    assert ["generic WSGI request"] == [t["transaction"] for t in transactions]
    # Unsampled, a health check still has its trace id on its line.
    [*checks] = [line for line in lines.events("request.finished") if line["path"] == "/healthz"]
    assert 3 == len(checks) and all(len(line["trace_id"]) == 32 for line in checks)


def test_a_sampled_parent_is_followed_even_on_an_ignored_path(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_logging()
    client = _app_tracing_everything(
        sentry_ingest, SENTRY_TRACES_SAMPLE_RATE="0", SENTRY_TRACES_IGNORE_PATHS="/healthz,/ping"
    ).test_client()
    trace = "771a43a4192642f0b136d5159a501700"

    client.get("/healthz", headers={"sentry-trace": f"{trace}-b7ad6b7169203331-1"})
    client.get("/healthz", headers={"sentry-trace": f"{trace}-b7ad6b7169203332-0"})
    flush()

    [transaction] = sentry_ingest.wait_for_transactions()
    assert (trace, "b7ad6b7169203331") == (
        transaction["contexts"]["trace"]["trace_id"],
        transaction["contexts"]["trace"]["parent_span_id"],
    )


def test_the_sampler_keeps_the_rate_for_other_paths() -> None:
    sample = traces_sampler(0.25, frozenset({"/healthz"}))

    assert 0.25 == sample({"wsgi_environ": {"PATH_INFO": "/api/meetings"}})
    assert 0.0 == sample({"wsgi_environ": {"PATH_INFO": "/healthz"}})
    assert 0.25 == sample({"transaction_context": {"op": "background"}})  # a job
    assert (1.0, 0.0) == (
        sample({"parent_sampled": True, "wsgi_environ": {"PATH_INFO": "/healthz"}}),
        sample({"parent_sampled": False, "wsgi_environ": {"PATH_INFO": "/api/meetings"}}),
    )
