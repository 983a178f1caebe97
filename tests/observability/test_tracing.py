"""mina.observability.tracing.span: spans that reach Sentry, and log lines that point at them."""

from __future__ import annotations

import sentry_sdk
import structlog

from mina.observability.tracing import span
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory


def test_spans_as_context_manager_decorator_and_sdk_spelling(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)
    log = structlog.get_logger()

    @span("ai")
    def summarise(text: str) -> str:
        log.info("ai.summarising")
        return text[:3]

    with sentry_sdk.start_transaction(op="task", name="transcribe") as transaction:
        with span("db", "SELECT meetings", rows=3) as db_span:
            log.info("db.querying")
        assert "abc" == summarise("abcdef")
        with sentry_sdk.start_span(op="ai", name="transcribe chunk"):
            pass
    sentry_sdk.flush(timeout=5)

    [sent] = sentry_ingest.wait_for_transactions()
    assert [
        ("db", "SELECT meetings"),
        ("ai", "test_spans_as_context_manager_decorator_and_sdk_spelling.<locals>.summarise"),
        ("ai", "transcribe chunk"),
    ] == [(s["op"], s["description"]) for s in sent["spans"]]
    assert 3 == sent["spans"][0]["data"]["rows"]
    [querying] = lines.events("db.querying")
    assert (transaction.trace_id, db_span.span_id) == (querying["trace_id"], querying["span_id"])
    [summarising] = lines.events("ai.summarising")
    assert sent["spans"][1]["span_id"] == summarising["span_id"]


def test_span_without_sentry_is_harmless(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()

    @span("db", "INSERT users")
    def insert() -> int:
        structlog.get_logger().info("inserted")
        return 1

    assert 1 == insert()
    assert "trace_id" not in lines.events("inserted")[0]
