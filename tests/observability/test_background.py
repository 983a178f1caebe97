"""mina.observability.background: jobs keep the submitter's context, and the queue is bounded."""

from __future__ import annotations

import threading

import pytest
import sentry_sdk
import structlog

from mina.observability import background, context
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory


def test_pending_jobs_are_bounded() -> None:
    release = threading.Event()
    futures = [background.submit(release.wait, 10) for _ in range(background.MAX_PENDING)]

    with pytest.raises(background.BackgroundBusy):
        background.submit(release.wait, 10)
    release.set()
    assert [True] * background.MAX_PENDING == [f.result(timeout=10) for f in futures]
    assert 42 == background.submit(lambda: 42).result(timeout=10)


def test_job_sees_the_context_of_submission_time(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=0.0)
    started = threading.Event()

    def job() -> None:
        started.wait(10)
        structlog.get_logger().error("job.ran")

    with sentry_sdk.isolation_scope():
        context.bind(k="at-submit")
        future = background.submit(job)
        context.bind(k="later")  # after submitting: not the job's business
        started.set()
        future.result(timeout=10)

    sentry_sdk.flush(timeout=5)

    [line] = lines.events("job.ran")
    [event] = sentry_ingest.wait_for_events()
    assert ("at-submit", "at-submit") == (line["k"], event["tags"]["k"])
