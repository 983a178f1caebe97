"""The pins: every private name of sentry-sdk that Mina uses, but those its serializer, its
presenter and its HTTP senders subclass or read (`mina.observability.sentry.sdk_serialize`,
`.sdk_present`, `.sdk_http`; each ``sdk_*`` module beside this one touches the SDK's
internals, and no other module of Mina does).

Here: the logging integration's breadcrumb handler and its ``_can_record``/
``_extra_from_record``/``_breadcrumb_from_record`` methods, the module-level
``_IGNORED_LOGGERS`` set, the part of ``Client.capture_event`` done in the caller's scope,
the Spotlight sender and the SDK's logger. `tests/observability/sentry/test_sdk.py` pins
each of them, so an SDK upgrade that moves one fails loudly there instead of silently
changing what reaches Sentry.

For the fast path (`mina.observability.fastpath`), also: the integration's
``_handler``/``_breadcrumb_handler``/``_sentry_logs_handler``, the ``callHandlers``
wrapper's name, ``Scope._breadcrumbs``/``_n_breadcrumbs_truncated``, and the scope
module's ``_current_scope``/``_isolation_scope``/``_global_scope``; pinned by
`tests/observability/test_sdk_pins.py`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from typing import Any, Final

import sentry_sdk
import urllib3
from sentry_sdk import scope as sentry_scope
from sentry_sdk._types import AnnotatedValue
from sentry_sdk.integrations import logging as sentry_logging
from sentry_sdk.integrations.logging import BreadcrumbHandler, EventHandler, LoggingIntegration
from sentry_sdk.utils import capture_internal_exceptions
from sentry_sdk.utils import logger as sdk_logger

from mina.observability.record import BREADCRUMB_HINT, rendered

__all__ = [
    "SPOTLIGHT_TIMEOUT",
    "MinaLoggingIntegration",
    "bound_spotlight",
    "quiet_sdk_logger",
]

_NOTHING: Final = logging.CRITICAL + 1  # a level no record reaches

_NAMES_MAX: Final = 4096  # logger names whose ignore decision is remembered


class _NameDecisions:
    """Sentry's ``_can_record`` (every ignored logger matched with `fnmatch`, for each
    record) with the decision remembered per logger name, forgotten whenever the ignore
    list changes."""

    def __init__(self) -> None:
        self._ignored: frozenset[str] = frozenset()
        self._decisions: dict[str, bool] = {}

    def _can_record(self, record: logging.LogRecord) -> bool:
        return self.can_record_name(record.name)

    def can_record_name(self, name: str) -> bool:
        """Return whether records of logger *name* reach Sentry (not ignored)."""
        ignored = sentry_logging._IGNORED_LOGGERS
        if ignored != self._ignored:  # ignore_logger()/unignore_logger() since last time
            self._ignored = frozenset(ignored)
            self._decisions = {}
        decisions = self._decisions
        decision = decisions.get(name)
        if decision is None:
            stripped = name.strip()
            decision = not any(fnmatch(stripped, pattern) for pattern in self._ignored)
            if len(decisions) >= _NAMES_MAX:
                decisions.clear()
            decisions[name] = decision
        return decision


class _BreadcrumbHandler(_NameDecisions, BreadcrumbHandler):
    """Sentry's breadcrumb handler with the same breadcrumbs, for less per record.

    It decides per logger name once (`_NameDecisions`) and reuses the message the stdout
    formatter already put on the record (``record.message``, computed with
    ``getMessage()`` when no formatter did). The breadcrumb itself is built by Sentry's
    own ``_breadcrumb_from_record``.
    """

    def __init__(self, level: int) -> None:
        BreadcrumbHandler.__init__(self, level=level)
        _NameDecisions.__init__(self)

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


class _EventHandler(_NameDecisions, EventHandler):
    """Sentry's event handler, skipping the records a call marked breadcrumb-only, and
    deciding per logger name once (`_NameDecisions`).

    See `mina.observability.record.BREADCRUMB_ONLY`: a line that summarises a failure
    with its own event (a 5xx's ``request.finished``) stays a breadcrumb.
    """

    def __init__(self, level: int) -> None:
        EventHandler.__init__(self, level=level)
        _NameDecisions.__init__(self)

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


#: Hint key `prepare_in_caller_scope` sets: the event is finished on the event worker,
#: which presents it (`present_serialized`) there, just before serialising it.
DEFERRED_HINT: Final = "_mina_deferred"


@dataclass(slots=True)
class CallerPart:
    """An error event after the part of ``Client.capture_event`` that needs the caller's
    scope: what the rest (`serialize`, ``before_send``, the envelope) is done with."""

    event: dict[str, Any]
    hint: dict[str, Any]
    #: The release-health session the event marks errored once it is sent (or None).
    session: Any
    event_id: str


def prepare_in_caller_scope(client: Any, event: Any, hint: Any, scope: Any) -> CallerPart | None:
    """Do for an error *event* what ``Client.capture_event`` and ``_prepare_event`` do
    with *scope* (the merged scope ``Scope.capture_event`` passes), in their order; return
    None where they return None.

    ``client.capture_event(part.event, part.hint, None)`` then does the rest, exactly as
    it would have: without a scope it skips what was done here. Pinned, with the SDK's
    code this follows, by `tests/observability/sentry/test_deferred.py`.
    """
    hint = dict(hint or ())
    if not client._should_capture(event, hint, scope):
        return None
    hint[DEFERRED_HINT] = True
    event_id = event.get("event_id")
    if event_id is None:
        event["event_id"] = event_id = uuid.uuid4().hex
    if event.get("timestamp") is None:
        event["timestamp"] = datetime.now(UTC)
    made = scope.apply_to_event(event, hint, client.options)
    if made is None:  # an event processor dropped it
        if client.transport is not None:
            client.transport.record_lost_event("event_processor", data_category="error")
        return None
    truncated = scope._n_breadcrumbs_truncated
    if truncated > 0:
        crumbs = made.get("breadcrumbs", {})
        kept = crumbs.get("values", []) if not isinstance(crumbs, AnnotatedValue) else []
        made["breadcrumbs"] = AnnotatedValue(
            made.get("breadcrumbs", {"values": []}), {"len": len(kept) + truncated}
        )
    return CallerPart(made, hint, scope._session, event_id)


def update_session(client: Any, session: Any, event: dict[str, Any]) -> None:
    """Mark *session* as ``Client.capture_event`` does once it sent *event*."""
    client._update_session_from_event(session, event)


#: Seconds the SDK's Spotlight sender may take for one envelope, on the capturing thread.
SPOTLIGHT_TIMEOUT: Final = 0.5


def bound_spotlight(timeout: float = SPOTLIGHT_TIMEOUT) -> None:
    """Give the SDK's Spotlight sender (``client.spotlight.http``) a timeout and no retries.

    The SDK posts each envelope to the sidecar from the thread that captured it, with
    urllib3's defaults (no timeout, three retries): a sidecar that accepts and never answers
    would hold that thread, a request, for ever. After a failure the SDK skips the sidecar
    for a growing while, so a hung one costs at most *timeout* now and then.
    """
    spotlight = getattr(sentry_sdk.get_client(), "spotlight", None)
    if spotlight is not None:
        spotlight.http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)


def quiet_sdk_logger(debug: bool) -> None:
    """Set the SDK's own logger to DEBUG with *debug*, else to a level no record reaches.

    Without debug, the SDK's own filter drops every record of its logger, yet the logger
    is set to DEBUG: two records a request would be built for nothing.
    """
    sdk_logger.setLevel(logging.DEBUG if debug else _NOTHING)


# -- the fast path's view of the logging integration ------------------------------------------

#: Sentry's level names for stdlib levels (what its handlers put in ``level``).
LOGGING_TO_EVENT_LEVEL: Final = sentry_logging.LOGGING_TO_EVENT_LEVEL

_PATCH_NAME: Final = "LoggingIntegration.setup_once.<locals>.sentry_patched_callhandlers"


def is_sentry_call_handlers(func: object) -> bool:
    """Return whether *func* is the SDK's wrapper of ``logging.Logger.callHandlers``.

    The wrapper calls the original, then hands the record to the client's
    LoggingIntegration (`LoggingIntegration._handle_record`) unless its logger is ignored.
    """
    return (
        getattr(func, "__qualname__", None) == _PATCH_NAME
        and getattr(func, "__module__", None) == sentry_logging.__name__
    )


def active_client() -> tuple[Any, Any]:
    """Return ``(client, current)``: the client ``Scope.get_client()`` returns if it is
    active (else None) and the current scope (None if this context has none yet).

    What ``Scope.get_client()`` and ``Scope.get_current_scope()`` find, with each of
    Sentry's context variables read once: a log call needs both.
    """
    current = sentry_scope._current_scope.get()
    client = current.client if current is not None else None
    if client is not None and client.is_active():
        return client, current
    isolation = sentry_scope._isolation_scope.get()
    client = isolation.client if isolation is not None else None
    if client is not None and client.is_active():
        return client, current
    outer = sentry_scope._global_scope
    client = outer.client if outer is not None else None
    return (client if client is not None and client.is_active() else None), current


def sentry_ignored() -> set[str]:
    """The logger names (and patterns) the SDK's logging integration ignores, live."""
    return sentry_logging._IGNORED_LOGGERS


def ignored_exactly(name: str) -> bool:
    """Return whether the SDK's callHandlers wrapper skips records of logger *name*."""
    return name.strip() in sentry_logging._IGNORED_LOGGERS


class CrumbRoute:
    """Where a client's LoggingIntegration sends a record of some level, read once per client.

    :ivar event_level: records at or above it become events (None: never).
    :ivar crumb_handler: Mina's breadcrumb handler (None: the integration has another one).
    :ivar plain: no Sentry Logs handler and no handler filters: nothing else sees records.
    """

    __slots__ = (
        "client",
        "crumb_handler",
        "event_handler",
        "event_level",
        "hook_redactor",
        "max_breadcrumbs",
        "plain",
    )

    def __init__(self, client: Any) -> None:
        self.client = client
        integration = client.get_integration(LoggingIntegration)
        self.event_level: int | None = None
        #: The integration's event handler (None: no events), which a fast ERROR record meets.
        self.event_handler: EventHandler | None = None
        self.crumb_handler: _BreadcrumbHandler | None = None
        self.plain = False
        self.max_breadcrumbs: int = client.options.get("max_breadcrumbs", 100)
        #: The redactor of Mina's ``before_breadcrumb`` (None: the client has another hook).
        self.hook_redactor: Any = getattr(
            client.options.get("before_breadcrumb"), "mina_redactor", None
        )
        if integration is None:
            self.plain = True  # the wrapper finds no integration: records reach no handler
            return
        events = integration._handler
        self.event_handler = events
        crumbs = integration._breadcrumb_handler
        self.event_level = events.level if events is not None else None
        if type(crumbs) is _BreadcrumbHandler and not crumbs.filters:
            self.crumb_handler = crumbs
        self.plain = (
            integration._sentry_logs_handler is None
            and (events is None or not events.filters)
            and (crumbs is None or self.crumb_handler is not None)
        )


def append_breadcrumb(scope: Any, crumb: dict[str, Any], max_breadcrumbs: int) -> None:
    """Append a finished breadcrumb to *scope*, as `Scope.add_breadcrumb` does after its hook.

    For breadcrumbs that already are what ``before_breadcrumb`` would return.
    """
    crumbs = scope._breadcrumbs
    crumbs.append(crumb)
    while len(crumbs) > max_breadcrumbs:
        crumbs.popleft()
        scope._n_breadcrumbs_truncated += 1
