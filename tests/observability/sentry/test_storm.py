"""Storms: identical log-originated errors beyond the budget are counted, and the count
reaches the operator three ways (the next event, a line, a client report)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import sentry_sdk
import structlog

from mina.observability.sentry.storm import SUPPRESSED_TAG, StormGuard
from mina.testing import SentryIngest
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
    assert (["a.failed", "b.failed"], ids) == (logged, by_hand)


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
