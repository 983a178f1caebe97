"""Logged error events finished on the event worker (`mina.observability.sentry.deferred`).

Through the real client, transport and a local ingest: ``before_send`` still runs (on the
worker, while the logging call has long returned), an event whose id is handed out is
finished on the calling thread, ``flush()`` and ``close()`` deliver
what was queued, a full queue makes callers finish their own events (nothing lost, two
lines say so), and an event finished on the worker equals the one the SDK makes on the
calling thread.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog
from sentry_sdk import client as sentry_client

from mina.observability.sentry import close_sentry
from mina.observability.sentry.deferred import DeferredEvents
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

from .test_transport import start, wait_for

log = structlog.get_logger("mina.jobs")


def logged(message: str) -> str:
    """Log an error (an event finished on the worker); return its id."""
    log.error(message)
    event_id = sentry_sdk.last_event_id()
    assert event_id is not None
    return event_id


def _gate_before_send(client: Any) -> tuple[threading.Event, list[str]]:
    """Make the client's ``before_send`` wait for the returned event on the event worker
    (callers pass); record the threads it runs on."""
    gate = threading.Event()
    threads: list[str] = []
    before_send = client.options["before_send"]

    def gated(event: Any, hint: Any) -> Any:
        threads.append(threading.current_thread().name)
        if threading.current_thread().name == "mina-sentry-events":
            gate.wait(10)
        return before_send(event, hint)

    client.options["before_send"] = gated
    return gate, threads


def test_the_call_returns_while_before_send_still_runs_on_the_worker(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    start(mina_logging, sentry_ingest, tmp_path)
    gate, threads = _gate_before_send(sentry_sdk.get_client())

    log.error("job.failed", api_key="sk_live_" + "a" * 24)  # returns: the worker waits

    wait_for(lambda: bool(threads))
    assert ["mina-sentry-events"] == threads
    assert [] == sentry_ingest.events
    gate.set()
    [event] = sentry_ingest.wait_for_events(1)
    assert "[REDACTED]" == event["extra"]["api_key"]  # before_send's redaction ran


def test_flush_and_close_deliver_what_is_queued(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    start(mina_logging, sentry_ingest, tmp_path)
    ids = [logged(f"queued {i}") for i in range(20)]
    sentry_sdk.flush(timeout=10)
    assert set(ids) == {event["event_id"] for event in sentry_ingest.accepted_events}

    more = [logged(f"at close {i}") for i in range(20)]
    close_sentry()
    assert set(ids + more) == {event["event_id"] for event in sentry_ingest.accepted_events}


def test_a_full_queue_makes_callers_finish_their_own_events(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path)
    client = sentry_sdk.get_client()
    deferred = DeferredEvents(client, capacity=2).install()  # over the one init_sentry put
    gate, threads = _gate_before_send(client)
    first = logged("held by the gate")
    wait_for(lambda: bool(threads))  # the worker holds the first event
    queued = [logged(f"queued {i}") for i in range(2)]
    by_callers = [logged(f"caller {i}") for i in range(3)]

    assert ["mina-sentry-events"] + ["MainThread"] * 3 == threads
    gate.set()
    deferred.flush(timeout=10)
    delivered = {event["event_id"] for event in sentry_ingest.accepted_events}
    assert {first, *queued, *by_callers} == delivered
    [full] = lines.events("sentry.events_queue_full")
    assert 2 == full["queue"]
    [drained] = lines.events("sentry.events_queue_drained")
    assert 3 == drained["finished_by_callers"]


def test_a_hook_that_flushes_on_the_worker_does_not_wait_on_itself(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path)
    client = sentry_sdk.get_client()
    before_send = client.options["before_send"]
    flushed: list[str] = []

    def flushing(event: Any, hint: Any) -> Any:
        # The worker's own queue holds this event: waiting for it would wait 30 s each.
        sentry_sdk.flush(timeout=30)
        flushed.append(event["event_id"])
        return before_send(event, hint)

    client.options["before_send"] = flushing
    ids = [logged(f"flushing {i}") for i in range(2)]
    wait_for(lambda: len(sentry_ingest.accepted_events) == 2, timeout=10)
    assert ids == flushed
    assert set(ids) == {event["event_id"] for event in sentry_ingest.accepted_events}
    assert [] == lines.events("sentry.event_failed")


def _masked(event: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in event.items() if k not in ("event_id", "timestamp")}
    out["breadcrumbs"] = [
        {k: v for k, v in crumb.items() if k != "timestamp"}
        for crumb in event.get("breadcrumbs", {}).get("values", [])
    ]
    return out


def test_an_event_finished_on_the_worker_equals_the_sdk_s_own(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    start(mina_logging, sentry_ingest, tmp_path)
    client = sentry_sdk.get_client()

    def one_request() -> None:
        with sentry_sdk.isolation_scope():
            sentry_sdk.set_tag("meeting_id", "m-1")
            sentry_sdk.set_user({"id": "7"})
            for step in range(3):
                log.info("step.done", step=step, token="tok_" + "b" * 30)
            try:
                raise ValueError("password=hunter2 in the message")
            except ValueError:
                log.error("job.failed", exc_info=True, seats=4, title="Standup")

    one_request()  # deferred (init_sentry installed it)
    sentry_sdk.flush(timeout=10)
    client.capture_event = client.capture_event.__self__._capture  # the SDK's own, again
    one_request()
    sentry_sdk.flush(timeout=10)

    deferred, direct = sentry_ingest.wait_for_events(2)
    assert _masked(direct) == _masked(deferred)
    [exception] = deferred["exception"]["values"]
    assert "hunter2" not in exception["value"]


@pytest.mark.parametrize(
    ("function", "digest"),
    [
        (sentry_client._Client.capture_event, "db34b4e5de6c8604"),
        (sentry_client._Client._prepare_event, "9c0d1378dc99d919"),
    ],
)
def test_the_sdk_code_prepare_in_caller_scope_follows_is_unchanged(
    function: Any, digest: str
) -> None:
    """`prepare_in_caller_scope` repeats the scope-dependent start of these two methods
    (sentry-sdk 2.75). If this fails after an upgrade, compare them with it, and with
    what ``capture_event(event, hint, None)`` skips, then update the digest."""
    source = inspect.getsource(function)
    assert digest == hashlib.sha256(source.encode()).hexdigest()[:16]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_sends_its_own_events(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    """A client made before a fork (gunicorn with ``preload_app``): the child finishes its
    events with an event worker of its own and sends them with outbox threads of its own.
    The parent's outbox threads are stopped before the fork, so only the child's can."""
    start(mina_logging, sentry_ingest, tmp_path)
    parent = logged("from the parent")  # starts the worker
    sentry_sdk.flush(timeout=10)
    wait_for(lambda: len(sentry_ingest.accepted_events) == 1)
    sentry_sdk.get_client().transport.kill()  # the parent's sender and janitor
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: capture, flush, report the id, leave without cleanup
        try:
            child = logged("from the child")
            sentry_sdk.flush(timeout=10)
            os.write(write, (child or "").encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    wait_for(lambda: len(sentry_ingest.accepted_events) >= 2)
    assert {parent, child} == {event["event_id"] for event in sentry_ingest.accepted_events}
