"""Every use of sentry-sdk's private internals, in one place.

Mina leans on a few names the SDK does not document: the logging integration's breadcrumb
handler and its ``_can_record``/``_extra_from_record``/``_breadcrumb_from_record``
methods, and the module-level ``_IGNORED_LOGGERS`` set.
`tests/observability/sentry/test_sdk.py` pins each of them, so an SDK upgrade that moves
one fails loudly there instead of silently changing what reaches Sentry.
"""

from __future__ import annotations

import logging
from fnmatch import fnmatch
from typing import Any, Final

import sentry_sdk
from sentry_sdk.integrations import logging as sentry_logging
from sentry_sdk.integrations.logging import BreadcrumbHandler, EventHandler, LoggingIntegration
from sentry_sdk.utils import capture_internal_exceptions
from sentry_sdk.utils import logger as sdk_logger

from mina.observability.record import BREADCRUMB_HINT, rendered

__all__ = ["MinaLoggingIntegration", "quiet_sdk_logger"]

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
