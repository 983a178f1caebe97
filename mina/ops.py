"""Operational routes: ``/healthz`` and the manual Sentry check ``/api/test-sentry-error``."""

from __future__ import annotations

import flask
import sentry_sdk

from mina.observability import stream
from mina.observability.pipeline import get_logger
from mina.observability.sentry.transport import link_health

__all__ = ["bp", "test_bp"]

_log = get_logger(__name__)

bp = flask.Blueprint("ops", __name__)
#: Registered only where test routes are enabled (``MINA_ENABLE_TEST_ROUTES``).
test_bp = flask.Blueprint("ops_test", __name__)


@bp.get("/healthz")
def healthz() -> flask.Response:
    """Liveness, whether this process's log lines reach stdout, and its Sentry outbox and
    link.

    Always 200 while the process serves requests: a stalled log reader or an unwritable
    outbox is not cured by restarting the service. ``logging`` is ``ok`` or ``degraded``
    (with a ``reason``: stdout closed, broken, failing, full or stalled); ``dropped``
    counts the lines this process could not write since it started. ``outbox`` and
    ``sentry`` are `mina.observability.sentry.transport.link_health`. Answering never
    waits on stdout, the disk or the network.
    """
    state = stream.health()
    if state is None:  # a logging.yaml without Mina's stdout handler
        body: dict[str, object] = {"status": "ok", "logging": "unmonitored", "dropped": 0}
    else:
        body = {"status": "ok", "logging": state.state, "dropped": state.dropped}
        if state.reason is not None:
            body["reason"] = state.reason
    body.update(link_health())
    return flask.jsonify(body)


@test_bp.get("/api/test-sentry-error")
def test_sentry_error() -> flask.Response:
    """Send a message and a handled ZeroDivisionError to Sentry; return their event ids.

    The manual check that Sentry is wired: look the ids up in Sentry. With Sentry off the
    ids are null and ``sentry_enabled`` is false.
    """
    message_id = sentry_sdk.capture_message("Mina Sentry test message", level="info")
    try:
        1 / 0  # noqa: B018 -- the point is the exception
    except ZeroDivisionError:
        error_id = sentry_sdk.capture_exception()
    enabled = sentry_sdk.get_client().is_active()
    _log.info(
        "sentry.test_sent",
        sentry_enabled=enabled,
        message_event_id=message_id,
        error_event_id=error_id,
    )
    return flask.jsonify(
        sentry_enabled=enabled,
        message_event_id=message_id,
        error_event_id=error_id,
        request_id=flask.g.get("request_id"),
    )
