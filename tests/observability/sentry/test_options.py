"""mina.observability.sentry.options: the options and hooks init_sentry gives the SDK."""

from __future__ import annotations

import sentry_sdk
import structlog

from mina.logging_config import configure_logging
from mina.observability.sentry import close_sentry, init_sentry
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
