"""Acknowledged means durable: an event id handed to the caller names an event that is
already in the outbox (written and renamed into ``pending/``) when the call returns.

The event worker (`mina.observability.sentry.deferred`) is held at a gate for every
test here: anything it would finish stays unwritten, so a file found in ``pending/`` right
after the call was written by the calling thread, before the id was returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
import sentry_sdk
import structlog

from mina import ops
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

from .test_transport import start, wait_for


def _hold_the_worker(client: Any) -> tuple[threading.Event, list[str]]:
    """Make ``before_send`` wait on the event worker until the returned gate is set;
    record the thread of every call."""
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


def _pending_text(outbox: Path) -> str:
    pending = outbox / "pending"
    return "".join(path.read_text() for path in pending.iterdir()) if pending.is_dir() else ""


def _capture_exception() -> str | None:
    try:
        raise KeyError("acknowledged")
    except KeyError:
        return sentry_sdk.capture_exception()


CAPTURES: dict[str, Callable[[], str | None]] = {
    "capture_exception": _capture_exception,
    "capture_message": lambda: sentry_sdk.capture_message("acknowledged", level="error"),
    "capture_event": lambda: sentry_sdk.capture_event({"message": "acknowledged"}),
}


@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_an_id_handed_out_names_an_event_already_in_the_outbox(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path, capture: str
) -> None:
    start(mina_logging, sentry_ingest, tmp_path, sentry_dsn=None)  # kept: no sender
    gate, threads = _hold_the_worker(sentry_sdk.get_client())

    event_id = CAPTURES[capture]()

    assert event_id is not None
    assert f'"event_id":"{event_id}"' in _pending_text(tmp_path / "outbox")
    assert ["MainThread"] == threads  # before_send (redaction) ran before the write
    gate.set()


def test_the_test_route_returns_ids_of_events_in_the_outbox(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    start(mina_logging, sentry_ingest, tmp_path, sentry_dsn=None)
    gate, _ = _hold_the_worker(sentry_sdk.get_client())
    app = flask.Flask("durability")
    app.register_blueprint(ops.test_bp)

    body = app.test_client().get("/api/test-sentry-error").get_json()

    kept = _pending_text(tmp_path / "outbox")
    assert [True, True] == [
        f'"event_id":"{body[key]}"' in kept for key in ("message_event_id", "error_event_id")
    ]
    gate.set()


def test_a_logged_error_is_still_finished_on_the_worker(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    """No id is handed out for ``log.error``: its event may be finished later (the docs
    say so), and the logging call does not pay for serialising and writing it."""
    start(mina_logging, sentry_ingest, tmp_path)
    gate, threads = _hold_the_worker(sentry_sdk.get_client())

    structlog.get_logger("mina.jobs").error("job.failed")
    wait_for(lambda: bool(threads))

    assert ["mina-sentry-events"] == threads
    assert "job.failed" not in _pending_text(tmp_path / "outbox")
    gate.set()
    sentry_ingest.wait_for_events(1)
