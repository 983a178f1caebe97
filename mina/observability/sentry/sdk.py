"""Every use of sentry-sdk's private internals, in one place.

Mina leans on a few names the SDK does not document: the logging integration's breadcrumb
handler and its ``_can_record``/``_extra_from_record``/``_breadcrumb_from_record``
methods, the module-level ``_IGNORED_LOGGERS`` set, and the HTTP transport's
``_send_request``/``_request`` (``mina sentry-check`` records Sentry's answers; pinned
in ``tests/test_cli_sentry_check.py``) and its pool, auth, compression and rate-limit
state (`OutboxSender`, pinned by the outbox tests in ``tests/observability/sentry``).
`tests/observability/sentry/test_sdk.py` pins each of them, so an SDK upgrade that moves
one fails loudly there instead of silently changing what reaches Sentry.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from typing import Any, Final

import sentry_sdk
import urllib3
from sentry_sdk.consts import EndpointType
from sentry_sdk.envelope import Envelope, Item
from sentry_sdk.integrations import logging as sentry_logging
from sentry_sdk.integrations.logging import BreadcrumbHandler, EventHandler, LoggingIntegration
from sentry_sdk.transport import HttpTransport
from sentry_sdk.utils import capture_internal_exceptions
from sentry_sdk.utils import logger as sdk_logger

from mina.observability.record import BREADCRUMB_HINT, rendered

__all__ = [
    "Delivery",
    "MinaLoggingIntegration",
    "OutboxSender",
    "RecordingTransport",
    "quiet_sdk_logger",
]

_NOTHING: Final = logging.CRITICAL + 1  # a level no record reaches

_NAMES_MAX: Final = 4096  # logger names whose ignore decision is remembered


class _BreadcrumbHandler(BreadcrumbHandler):
    """Sentry's breadcrumb handler with the same breadcrumbs, for less per record.

    Sentry's handler matches the record's logger name against every ignored logger with
    `fnmatch` and formats the record again for each record; this one remembers the
    decision per logger name (forgotten whenever the ignore list changes) and reuses the
    message the stdout formatter already put on the record (``record.message``, computed
    with ``getMessage()`` when no formatter did). The breadcrumb itself is built by
    Sentry's own ``_breadcrumb_from_record``.
    """

    def __init__(self, level: int) -> None:
        super().__init__(level=level)
        self._ignored: frozenset[str] = frozenset()
        self._decisions: dict[str, bool] = {}

    def _can_record(self, record: logging.LogRecord) -> bool:
        ignored = sentry_logging._IGNORED_LOGGERS
        if ignored != self._ignored:  # ignore_logger()/unignore_logger() since last time
            self._ignored = frozenset(ignored)
            self._decisions = {}
        decisions = self._decisions
        name = record.name
        decision = decisions.get(name)
        if decision is None:
            stripped = name.strip()
            decision = not any(fnmatch(stripped, pattern) for pattern in self._ignored)
            if len(decisions) >= _NAMES_MAX:
                decisions.clear()
            decisions[name] = decision
        return decision

    def _extra_from_record(self, record: logging.LogRecord) -> Any:
        # A structlog call's keys, already collected by the chain (`RenderToLogKwargs`).
        done = rendered(record)
        return dict(done.call) if done is not None else super()._extra_from_record(record)

    def emit(self, record: logging.LogRecord) -> None:
        with capture_internal_exceptions():
            if not self._can_record(record):
                return
            if "message" not in record.__dict__:
                record.message = record.getMessage()
            hint: dict[str, Any] = {"log_record": record}
            done = rendered(record)
            if done is not None:
                # Message (the event name; structlog formats %-args before the chain) and
                # data come from the chain's redacted output.
                hint[BREADCRUMB_HINT] = done
            sentry_sdk.add_breadcrumb(self._breadcrumb_from_record(record), hint=hint)


class _EventHandler(EventHandler):
    """Sentry's event handler, skipping the records a call marked breadcrumb-only.

    See `mina.observability.record.BREADCRUMB_ONLY`: a line that summarises a failure
    with its own event (a 5xx's ``request.finished``) stays a breadcrumb.
    """

    def emit(self, record: logging.LogRecord) -> Any:
        done = rendered(record)
        if done is not None and not done.event:
            return None
        return super().emit(record)


class MinaLoggingIntegration(LoggingIntegration):
    """Sentry's LoggingIntegration (same identifier, options and events) with
    `_BreadcrumbHandler` for breadcrumbs and `_EventHandler` for events."""

    def __init__(
        self,
        level: int | None = logging.INFO,
        event_level: int | None = logging.ERROR,
        **kwargs: Any,
    ) -> None:
        super().__init__(level=level, event_level=event_level, **kwargs)
        if level is not None:
            self._breadcrumb_handler = _BreadcrumbHandler(level=level)
        if event_level is not None:
            self._handler = _EventHandler(level=event_level)


def quiet_sdk_logger(debug: bool) -> None:
    """Set the SDK's own logger to DEBUG with *debug*, else to a level no record reaches.

    Without debug, the SDK's own filter drops every record of its logger, yet the logger
    is set to DEBUG: two records a request would be built for nothing.
    """
    sdk_logger.setLevel(logging.DEBUG if debug else _NOTHING)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one envelope the transport handled.

    ``status`` is the HTTP status Sentry answered, or None when there was no answer
    (``error`` then says why) or when the transport did not send it (``dropped`` names the
    SDK's reason, e.g. ``ratelimit_backoff`` after a 429).
    """

    event_ids: tuple[str, ...]
    status: int | None = None
    headers: Mapping[str, str] | None = None
    body: bytes = b""
    error: BaseException | None = None
    dropped: str | None = None


def _event_ids(items: list[Item]) -> tuple[str, ...]:
    ids = []
    for item in items:
        event = item.get_event()
        if event is not None and event.get("event_id"):
            ids.append(str(event["event_id"]))
    return tuple(ids)


class RecordingTransport(HttpTransport):
    """sentry-sdk's own HTTP transport, recording each answer (or failure) as a `Delivery`.

    The sending is the SDK's, unchanged: rate limits, compression, proxies, client
    reports. Pass the class as ``sentry_sdk.init(transport=RecordingTransport)``; the
    instance is ``sentry_sdk.get_client().transport``.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self._lock = threading.Lock()
        self._sending: tuple[str, ...] = ()
        self._deliveries: list[Delivery] = []

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery so far, in order."""
        with self._lock:
            return list(self._deliveries)

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def _send_request(
        self,
        body: bytes,
        headers: dict[str, str],
        endpoint_type: Any,
        envelope: Envelope | None = None,
    ) -> None:
        # One worker thread sends, one request at a time: _request knows whose it is.
        self._sending = _event_ids(envelope.items) if envelope is not None else ()
        super()._send_request(body, headers, endpoint_type, envelope)

    def _request(
        self, method: str, endpoint_type: Any, body: Any, headers: Mapping[str, str]
    ) -> Any:
        try:
            response = super()._request(method, endpoint_type, body, headers)
        except Exception as exc:
            self._record(Delivery(self._sending, error=exc))
            raise
        answer = {name.lower(): value for name, value in response.headers.items()}
        self._record(Delivery(self._sending, response.status, answer, bytes(response.data)))
        return response

    def record_lost_event(
        self,
        reason: str,
        data_category: Any = None,
        item: Item | None = None,
        *,
        quantity: int = 1,
    ) -> None:
        """Record events the SDK dropped before sending (rate limits, a full queue)."""
        ids = _event_ids([item]) if item is not None else ()
        if ids and reason not in {"network_error", "send_error"}:  # those had a request
            self._record(Delivery(ids, dropped=reason))
        super().record_lost_event(reason, data_category, item, quantity=quantity)


class OutboxSender(HttpTransport):
    """Sentry's HTTP transport used only to send bytes the outbox kept.

    Reuses the SDK's connection pool (proxies, certificates), auth header, compression and
    rate-limit bookkeeping (``_update_rate_limits``, ``_check_disabled``,
    ``_disabled_until``), but never its queue: `mina.observability.sentry.transport` owns
    retrying. Each request has a short socket timeout and no urllib3 retries, so a hung
    Sentry holds the sending thread for *timeout* seconds, not 30 seconds times four.
    """

    def __init__(self, options: dict[str, Any], timeout: float) -> None:
        self._timeout = timeout
        super().__init__(options)

    def _get_pool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = super()._get_pool_options()
        options["timeout"] = urllib3.Timeout(connect=self._timeout, read=self._timeout)
        options["retries"] = False
        return options

    def post(self, envelope: bytes) -> tuple[int, str | None]:
        """POST the serialized *envelope*; return the status and the ``Retry-After`` value.

        Rate-limit headers are applied before returning, whatever the status.

        :raises Exception: whatever urllib3 raises for a refused, reset or timed-out request.
        """
        headers = {"Content-Type": "application/x-sentry-envelope"}
        if self._compression_algo == "br":  # only chosen when brotli imports
            import brotli  # type: ignore[import-untyped]

            body = brotli.compress(envelope, quality=self._compression_level)
            headers["Content-Encoding"] = "br"
        elif self._compression_algo == "gzip" and self._compression_level:
            body = gzip.compress(envelope, compresslevel=self._compression_level)
            headers["Content-Encoding"] = "gzip"
        else:
            body = envelope
        self._update_headers(headers)
        response = self._pool.request(
            "POST",
            self._auth.get_api_url(EndpointType.ENVELOPE),
            body=body,
            headers=headers,
            retries=False,
            preload_content=True,
        )
        try:
            self._update_rate_limits(response)
            return response.status, response.headers.get("Retry-After")
        finally:
            response.close()

    def blocked(self, categories: Iterable[str]) -> bool:
        """Whether Sentry asked for any of *categories* to wait (429, rate-limit header)."""
        return any(self._check_disabled(category) for category in categories)

    def blocked_all(self) -> bool:
        """Whether Sentry asked for every category to wait (a 429 without categories)."""
        return self._check_disabled("")

    def limited_for(self) -> float:
        """Seconds until the soonest rate limit ends (0.0 without any)."""
        now = datetime.now(UTC)
        ends = [until for until in self._disabled_until.values() if until > now]
        return (min(ends) - now).total_seconds() if ends else 0.0

    def limited_categories(self) -> list[str]:
        """The categories rate-limited now (``all`` for a limit on every category)."""
        now = datetime.now(UTC)
        return sorted(
            category or "all" for category, until in self._disabled_until.items() if until > now
        )
