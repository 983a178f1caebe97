"""Storms: identical log-originated errors beyond the budget are counted, and the count
reaches the operator three ways (the next event, a line, a client report)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog

from mina.observability.sentry import close_sentry
from mina.observability.sentry.storm import SUPPRESSED_TAG, StormGuard
from mina.testing import SentryIngest, capture_pipeline
from mina.testing.plugin import PipelineFactory

from .test_transport import client_reports, start, wait_for


def _fail(log: Any, name: str) -> None:
    try:
        raise ValueError("the same failure")
    except ValueError:
        log.error(name, exc_info=True)


def test_a_storm_is_counted_and_the_count_reaches_event_line_and_client_report(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path, storm_budget=3, storm_window=2.0)
    log = structlog.get_logger("mina.jobs")

    for _ in range(20):
        _fail(log, "job.failed")
    wait_for(lambda: bool(lines.events("sentry.storm_suppressed")))
    _fail(log, "job.failed")  # the next window: sent, carrying the count
    sentry_sdk.flush(timeout=5)
    sentry_sdk.flush(timeout=5)

    events = sentry_ingest.wait_for_events(4)
    assert [None, None, None, "17"] == [e.get("tags", {}).get(SUPPRESSED_TAG) for e in events]
    assert 17 == events[3]["extra"][SUPPRESSED_TAG]
    [line] = lines.events("sentry.storm_suppressed")
    assert {
        "suppressed": 17,
        "budget": 3,
        "window_seconds": 2.0,
        "storm_event": "job.failed",
        "storm_logger": "mina.jobs",
        "exception_type": "ValueError",
    } == {
        key: line[key]
        for key in (
            "suppressed",
            "budget",
            "window_seconds",
            "storm_event",
            "storm_logger",
            "exception_type",
        )
    }
    assert line["location"].endswith(f"test_storm.py:{_fail.__code__.co_firstlineno + 2}")
    assert 17 == client_reports(sentry_ingest)[("error", "before_send")]


def test_different_kinds_have_their_own_budget_and_captures_are_never_suppressed(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    start(mina_logging, sentry_ingest, tmp_path, storm_budget=1, storm_window=60)
    log = structlog.get_logger("mina.jobs")

    for name in ("a.failed", "b.failed", "a.failed", "b.failed"):
        _fail(log, name)
    ids = [sentry_sdk.capture_message("by hand", level="error") for _ in range(3)]
    sentry_sdk.flush(timeout=5)

    events = sentry_ingest.wait_for_events(5)
    logged = [e["logentry"]["message"] for e in events if e.get("logger") == "mina.jobs"]
    by_hand = [e["event_id"] for e in events if e.get("logger") != "mina.jobs"]
    assert (["a.failed", "b.failed"], sorted(ids)) == (sorted(logged), sorted(by_hand))


def test_budget_zero_turns_the_guard_off() -> None:
    guard = StormGuard(budget=0, window=60)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "same", None, sys.exc_info())

    assert all(guard.admit({}, {"log_record": record}) for _ in range(1000))


def test_the_window_is_per_kind_and_the_count_is_carried_once() -> None:
    now = [0.0]
    guard = StormGuard(budget=2, window=10, clock=lambda: now[0])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "same", None, None)
    hint = {"log_record": record}

    admitted = [guard.admit({}, hint) for _ in range(5)]
    now[0] = 10.0
    first, second = {}, {}
    assert (True, True) == (guard.admit(first, hint), guard.admit(second, hint))

    assert [True, True, False, False, False] == admitted
    assert ({"tags": {SUPPRESSED_TAG: "3"}, "extra": {SUPPRESSED_TAG: 3}}, {}) == (first, second)


def test_counts_of_windows_still_open_reach_stdout_when_the_client_closes(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    """A stop before the window ends (the issue's 1,000 errors, then a graceful stop
    3 s later, with a 60 s window): the count is a line, not only a client report."""
    lines = start(mina_logging, sentry_ingest, tmp_path, storm_budget=2, storm_window=60)
    log = structlog.get_logger("mina.jobs")

    for _ in range(50):
        _fail(log, "job.failed")
    close_sentry()

    [line] = lines.events("sentry.storm_suppressed")
    assert (48, 2, 60, "job.failed") == (
        line["suppressed"],
        line["budget"],
        line["window_seconds"],
        line["storm_event"],
    )


def test_every_window_end_writes_its_count_and_shutdown_adds_none() -> None:
    """Two windows ended by the timer, the second after a quiet gap: one line each, and
    the report at shutdown finds nothing left to say."""
    guard = StormGuard(budget=1, window=0.2)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "same", None, None)
    with capture_pipeline() as lines:
        for windows, burst in enumerate((5, 3), start=1):
            for _ in range(burst):
                guard.admit({}, {"log_record": record})
            wait_for(lambda n=windows: len(lines.events("sentry.storm_suppressed")) == n)
        guard.report_pending()

    assert [4, 2] == [line["suppressed"] for line in lines.events("sentry.storm_suppressed")]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_reports_its_windows_at_their_end() -> None:
    """A guard made before a fork whose timer was running (gunicorn's preload_app): the
    child, without the parent's timer thread, still writes its line at the window end."""
    guard = StormGuard(budget=1, window=1.0)  # long enough for a slow fork to stay in it
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "same", None, None)
    for _ in range(3):
        guard.admit({}, {"log_record": record})  # the parent's timer is now running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with capture_pipeline() as lines:
                guard.admit({}, {"log_record": record})  # the window has not ended yet
                deadline = time.monotonic() + 5
                while not lines.events("sentry.storm_suppressed") and time.monotonic() < deadline:
                    time.sleep(0.02)
                os.write(write, json.dumps(lines.events("sentry.storm_suppressed")).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        reported = json.loads(pipe.read() or b"[]")
    os.waitpid(pid, 0)
    assert [3] == [line["suppressed"] for line in reported]
