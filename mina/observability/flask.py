"""The Flask wiring: request context on every line and event, one ``request.finished`` line.

`Observability` is a Flask extension (``init_app``) in the django-structlog mould: bind
the request's context when it starts, write one finished line with status, duration and
size, echo ``X-Request-ID`` on every response (errors included), and clear the context
when the request ends so nothing survives into the next request on the same thread. A
request's stdout lines are written together when it ends (or at once from its first
warning or error on; `mina.observability.stream.begin_batch`).

Sentry's FlaskIntegration (enabled in `mina.observability.sentry`) gives each request its
own scope and transaction and continues incoming ``sentry-trace``/``baggage`` headers;
the context bound here lands in that scope too, through `mina.observability.context`.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Final

import flask
from werkzeug.middleware.proxy_fix import ProxyFix

from mina.observability import context
from mina.observability.pipeline import PIPELINE, get_logger
from mina.observability.record import BREADCRUMB_ONLY
from mina.observability.stream import begin_batch, end_batch
from mina.redaction import Redactor
from mina.settings import Settings

__all__ = ["ERROR_CODE_ATTR", "REQUEST_ID_HEADER", "Observability", "request_id_from"]

REQUEST_ID_HEADER: Final = "X-Request-ID"
#: The ``flask.g`` attribute where an error answer leaves its code word (``not_found``),
#: which the request's ``request.finished`` line then carries as ``error``.
ERROR_CODE_ATTR: Final = "mina_error"
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_USER_AGENT_MAX: Final = 256
_REJECTED_MAX: Final = 64

_log = get_logger("mina.request")


def _log_exception(exc_info: Any) -> None:
    # One stable event for every unhandled exception, its class as a key.
    kind = exc_info[0]
    module = "" if kind.__module__ == "builtins" else kind.__module__ + "."
    _log.error("request.failed", exception_type=module + kind.__qualname__, exc_info=exc_info)


def request_id_from(header: str | None, redactor: Redactor | None = None) -> tuple[str, str | None]:
    """Return ``(request_id, rejected)`` for an incoming ``X-Request-ID`` value.

    The caller's id is kept when it is 1 to 128 characters of ``[A-Za-z0-9._:-]`` and,
    given a *redactor*, holds nothing it would redact (an API token sent as a request id
    would otherwise ride on every line and every Sentry tag); otherwise a fresh one is
    generated and the rejected value comes back cut to 64 characters and escaped.
    """
    if (
        header is not None
        and _REQUEST_ID.fullmatch(header)
        and (redactor is None or not redactor.changes(header))
    ):
        return header, None
    rejected = None
    if header is not None:
        cut = header[:_REJECTED_MAX]
        rejected = cut.encode("unicode_escape").decode("ascii", "replace")
        if len(header) > _REJECTED_MAX:
            rejected += f"...({len(header)} chars)"
    return uuid.uuid4().hex, rejected


class Observability:
    """Bind request context, log one finished line per request, echo ``X-Request-ID``.

    :param settings: the trusted-proxy count (the PII policy is the pipeline's); read
        from the environment when omitted.
    """

    def __init__(self, app: flask.Flask | None = None, settings: Settings | None = None) -> None:
        self.settings = settings
        if app is not None:
            self.init_app(app, settings)

    def init_app(self, app: flask.Flask, settings: Settings | None = None) -> None:
        """Install the request hooks on *app*."""
        settings = settings or self.settings or Settings.from_env()
        if settings.trusted_proxies:
            # Only then are X-Forwarded-* believed: anyone can send them.
            n = settings.trusted_proxies
            app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
                app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
            )
        app.extensions["mina.observability"] = self
        # Flask's own line for an unhandled exception is "Exception on <path> [<method>]":
        # one event name per URL, which no collector can count. Sentry's Flask integration
        # has already captured the exception (its signal fires first), and its dedupe
        # keeps this record from becoming a second event.
        app.log_exception = _log_exception  # type: ignore[method-assign]
        app.before_request(self._started)
        app.after_request(self._finished)
        app.teardown_request(self._teardown)

    @staticmethod
    def _started() -> None:
        # The request's stdout lines are written together (`begin_batch`), at teardown.
        flask.g.mina_batch = begin_batch()
        request = flask.request
        # No clear() here: the teardown of the previous request did it, and something may
        # already have bound context for this one (Sentry's FlaskIntegration loads the
        # Flask-Login user early when PII is on, which binds it).
        request_id, rejected = request_id_from(
            request.headers.get(REQUEST_ID_HEADER), PIPELINE.redactor
        )
        flask.g.request_id = request_id
        flask.g.mina_started = time.perf_counter()
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
        }
        if request.url_rule is not None:  # a 404 matched no route: no key rather than null
            fields["route"] = request.url_rule.rule
        if request.user_agent.string:
            fields["user_agent"] = request.user_agent.string[:_USER_AGENT_MAX]
        fields["client_ip"] = request.remote_addr  # kept only with MINA_SEND_PII=1
        context.bind_request(**fields)
        meeting_id = (request.view_args or {}).get("meeting_id")
        if meeting_id is not None:
            context.bind_meeting(str(meeting_id))
        if rejected is not None:
            _log.warning("request.request_id_rejected", rejected=rejected)
        _log.debug("request.started")

    @staticmethod
    def _finished(response: flask.Response) -> flask.Response:
        request_id = flask.g.get("request_id")
        if request_id is not None:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = flask.g.get("mina_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 3) if started else None
        status = response.status_code
        fields: dict[str, Any] = {
            "status": status,
            "duration_ms": duration_ms,
            "size": response.calculate_content_length(),
        }
        if status < 400:
            _log.info("request.finished", **fields)
            return response
        error = flask.g.get(ERROR_CODE_ATTR)
        if error is not None:
            fields["error"] = error
        if status < 500:
            _log.warning("request.finished", **fields)
        else:
            # An error on stdout; for Sentry a breadcrumb only: the failure's own event
            # (the exception, or the line that reported it) is already there.
            _log.error("request.finished", **fields, **{BREADCRUMB_ONLY: True})
        return response

    @staticmethod
    def _teardown(exc: BaseException | None) -> None:
        context.clear()
        end_batch(flask.g.pop("mina_batch", None))
