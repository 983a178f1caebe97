"""mina.observability.sentry.sdk: Mina's breadcrumb handler sends exactly what Sentry's own
handler would, and every private SDK internal it relies on is pinned here."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import sentry_sdk
import structlog
from sentry_sdk.integrations import logging as sentry_logging
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


# --- pins: the SDK internals mina.observability.sentry.sdk relies on -------------------------
# Each test names one private SDK behaviour Mina's code assumes. If an sentry-sdk upgrade
# changes it, the test fails here, saying which assumption broke, instead of Mina's
# breadcrumbs or events quietly changing shape.


def _record(name: str = "vendor.lib", msg: str = "hello %s", **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, ("world",), None)
    record.__dict__.update(extra)
    return record


def test_pin_ignored_loggers_is_one_module_set_that_ignore_logger_mutates() -> None:
    """`_BreadcrumbHandler._can_record` reads ``_IGNORED_LOGGERS`` and compares it with its
    cached copy: it must stay a module-level set changed in place by ignore_logger()."""
    before = sentry_logging._IGNORED_LOGGERS

    ignore_logger("mina.pinned.*")
    try:
        assert "mina.pinned.*" in sentry_logging._IGNORED_LOGGERS
    finally:
        unignore_logger("mina.pinned.*")

    assert before is sentry_logging._IGNORED_LOGGERS
    assert isinstance(before, set)
    assert "mina.pinned.*" not in before


@pytest.mark.parametrize(
    "name", ["mina.pin", "mina.pin.child", " mina.pin ", "mina.pinx", "other", "mina"]
)
@pytest.mark.parametrize("pattern", ["mina.pin", "mina.pin.*", "mina.*", "*.pin"])
def test_pin_can_record_decides_like_sentrys_own(name: str, pattern: str) -> None:
    """Mina caches `_can_record`'s answer per logger name; the answer is Sentry's: fnmatch
    of the stripped name against every ignored pattern."""
    ours, theirs = _BreadcrumbHandler(level=logging.INFO), BreadcrumbHandler(level=logging.INFO)
    record = _record(name)

    ignore_logger(pattern)
    try:
        decisions = (ours._can_record(record), theirs._can_record(record))
    finally:
        unignore_logger(pattern)

    assert decisions[1] == decisions[0]
    assert (ours._can_record(record), theirs._can_record(record)) == (True, True)


def test_pin_extra_from_record_is_public_attributes_minus_the_record_own() -> None:
    """Foreign records get Sentry's own `_extra_from_record`: every record attribute that
    is neither a standard LogRecord field nor private."""
    record = _record(port=5432, _private=1, tags="t")

    assert {"port": 5432} == BreadcrumbHandler(level=logging.INFO)._extra_from_record(record)
    assert {"port": 5432} == _BreadcrumbHandler(level=logging.INFO)._extra_from_record(record)


def test_pin_breadcrumb_from_record_shape_and_sources() -> None:
    """Mina's emit hands the record to Sentry's `_breadcrumb_from_record`: the breadcrumb has
    exactly these keys, takes its message from ``record.message`` (which Mina's emit sets
    instead of formatting) and its data from ``_extra_from_record`` (which Mina overrides)."""

    class DataFromOverride(BreadcrumbHandler):
        def _extra_from_record(self, record: logging.LogRecord) -> Any:
            return {"from": "override"}

    record = _record("vendor.lib")
    record.message = "set by the caller"

    crumb = DataFromOverride(level=logging.INFO)._breadcrumb_from_record(record)

    assert {
        "type": "log",
        "level": "info",
        "category": "vendor.lib",
        "message": "set by the caller",
        "data": {"from": "override"},
    } == {key: value for key, value in crumb.items() if key != "timestamp"}
    assert dt.datetime.fromtimestamp(record.created, dt.UTC) == crumb["timestamp"]


def test_pin_sentrys_emit_adds_the_breadcrumb_with_the_record_as_hint(
    sentry_ingest: SentryIngest,
) -> None:
    """Mina's emit copies the shape of Sentry's: `_can_record`, then one
    ``add_breadcrumb(_breadcrumb_from_record(record), hint={"log_record": record})``."""
    hints: list[Any] = []
    sentry_sdk.init(
        dsn=sentry_ingest.dsn,
        default_integrations=False,
        before_breadcrumb=lambda crumb, hint: hints.append(hint) or crumb,
    )
    record = _record("vendor.lib")
    ignored = _record("mina.pin.ignored")

    ignore_logger("mina.pin.ignored")
    try:
        BreadcrumbHandler(level=logging.INFO).handle(record)
        BreadcrumbHandler(level=logging.INFO).handle(ignored)
    finally:
        unignore_logger("mina.pin.ignored")

    assert [{"log_record": record}] == hints
    assert "hello world" == record.message


def test_pin_logging_integration_routes_records_to_its_breadcrumb_handler(
    mina_sentry: PipelineFactory,
) -> None:
    """`MinaLoggingIntegration` swaps ``_breadcrumb_handler`` after Sentry's __init__; Sentry's
    ``_handle_record`` must keep calling ``self._breadcrumb_handler.handle`` for INFO+."""
    mina_sentry(traces_sample_rate=0.0)
    integration = sentry_sdk.get_client().get_integration(LoggingIntegration)
    assert isinstance(integration, MinaLoggingIntegration)
    seen: list[logging.LogRecord] = []

    class Recording(_BreadcrumbHandler):
        def handle(self, record: logging.LogRecord) -> bool:
            seen.append(record)
            return True

    integration._breadcrumb_handler = Recording(level=logging.INFO)
    logging.getLogger("vendor.pin").debug("below the level")
    logging.getLogger("vendor.pin").info("at the level")

    assert ["at the level"] == [record.getMessage() for record in seen]
    assert None is MinaLoggingIntegration(level=None)._breadcrumb_handler


def test_pin_the_integration_patches_logger_call_handlers(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    """Sentry sees records in ``Logger.callHandlers``, not as a handler: a handler filter
    or a logger with no handlers does not gate it. That is why redaction must happen
    before the record exists (the chain) and again in the ``before_*`` hooks."""
    mina_sentry(traces_sample_rate=0.0)
    quiet = logging.getLogger("vendor.pin.quiet")
    quiet.propagate = False  # no handler of any kind would see this record
    try:
        quiet.error("reached sentry anyway, token=%s", SECRET)
    finally:
        quiet.propagate = True
    flush()

    assert "sentry_patched_callhandlers" == logging.Logger.callHandlers.__name__
    [event] = sentry_ingest.wait_for_events()
    assert "reached sentry anyway, token=[REDACTED]" == event["logentry"]["formatted"]


def test_pin_data_collection_keeps_the_sdk_scrubber_off(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    """Mina passes ``data_collection``; the SDK then runs no ``EventScrubber`` beside Mina's
    redaction, so a secret carries one marker (``[REDACTED]``), never ``[Filtered]``."""
    mina_sentry(traces_sample_rate=0.0)
    sentry_sdk.set_extra("password", SECRET)
    sentry_sdk.capture_message("one marker")
    flush()

    [event] = sentry_ingest.wait_for_events()
    assert None is sentry_sdk.get_client().options["event_scrubber"]
    assert "[REDACTED]" == event["extra"]["password"]
    assert b"[Filtered]" not in b"".join(sentry_ingest.raw_bodies)
