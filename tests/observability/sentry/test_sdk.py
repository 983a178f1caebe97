"""Mina's breadcrumb handler sends exactly what Sentry's own handler would."""

from __future__ import annotations

import logging
from typing import Any

import sentry_sdk
import structlog
from sentry_sdk.integrations.logging import (
    BreadcrumbHandler,
    LoggingIntegration,
    ignore_logger,
    unignore_logger,
)

from mina.observability import context
from mina.observability.sentry.sdk import MinaLoggingIntegration, _BreadcrumbHandler
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import SECRET, flush


def _calls() -> None:
    log = structlog.get_logger("mina.crumbs")
    context.bind(request_id="r-7")
    log.info("meeting.created", title="Standup", seats=4, password=SECRET)
    log.warning("quota.low", left=3, url=f"https://x/cb?token={SECRET}")
    logging.getLogger("thirdparty.lib").info(
        "connecting to %s with token=%s", "db", SECRET, extra={"port": 5432, "api_key": SECRET}
    )
    logging.getLogger("mina.crumbs.ignored").info("never a breadcrumb")
    log.error("meeting.failed", reason="boom")
    context.clear()


def _crumbs(ingest: SentryIngest) -> list[dict[str, Any]]:
    flush()
    [event] = ingest.wait_for_events()
    ingest.clear()
    return [
        {k: v for k, v in crumb.items() if k != "timestamp"}
        for crumb in event["breadcrumbs"]["values"]
        if crumb.get("type") == "log"
    ]


def test_breadcrumbs_equal_sentrys_own_handler(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)
    ignore_logger("mina.crumbs.ignored")
    integration = sentry_sdk.get_client().get_integration(LoggingIntegration)
    assert isinstance(integration, MinaLoggingIntegration)
    assert isinstance(integration._breadcrumb_handler, _BreadcrumbHandler)

    try:
        with sentry_sdk.isolation_scope():
            _calls()
        ours = _crumbs(sentry_ingest)

        integration._breadcrumb_handler = BreadcrumbHandler(level=logging.INFO)
        with sentry_sdk.isolation_scope():
            _calls()
        theirs = _crumbs(sentry_ingest)
    finally:
        unignore_logger("mina.crumbs.ignored")

    assert 3 == len(ours)
    assert theirs == ours
    assert "connecting to db with token=[REDACTED]" == ours[2]["message"]
    assert "[REDACTED]" == ours[0]["data"]["password"]
    assert "[REDACTED]" == ours[2]["data"]["api_key"]
    assert not any(SECRET.encode() in body for body in sentry_ingest.raw_bodies)


def test_ignore_list_changes_reach_the_handler(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)
    handler = _BreadcrumbHandler(level=logging.INFO)
    record = logging.LogRecord("mina.later.ignored", logging.INFO, "", 0, "x", (), None)

    assert handler._can_record(record)
    ignore_logger("mina.later.*")
    try:
        assert not handler._can_record(record)
    finally:
        unignore_logger("mina.later.*")
    assert handler._can_record(record)
