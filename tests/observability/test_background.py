"""mina.observability.background: jobs keep the submitter's context, and the queue is bounded."""

from __future__ import annotations

import threading

import pytest
import sentry_sdk
import structlog

from mina.observability import background, context
from mina.testing.plugin import PipelineFactory


def test_pending_jobs_are_bounded() -> None:
    release = threading.Event()
    futures = [background.submit(release.wait, 10) for _ in range(background.MAX_PENDING)]

    with pytest.raises(background.BackgroundBusy):
        background.submit(release.wait, 10)
    release.set()
    assert [True] * background.MAX_PENDING == [f.result(timeout=10) for f in futures]
    assert 42 == background.submit(lambda: 42).result(timeout=10)


def test_job_sees_the_context_of_submission_time(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    started = threading.Event()

    def job() -> None:
        started.wait(10)
        structlog.get_logger().info("job.ran", tag=sentry_sdk.get_isolation_scope()._tags.get("k"))

    with sentry_sdk.isolation_scope():
        context.bind(k="at-submit")
        future = background.submit(job)
        context.bind(k="later")  # after submitting: not the job's business
        started.set()
        future.result(timeout=10)

    [line] = lines.events("job.ran")
    assert ("at-submit", "at-submit") == (line["k"], line["tag"])
