"""Sentry's options and hooks, in one place.

`sentry_options` turns validated `mina.settings.Settings` into the keyword arguments of
`sentry_sdk.init`; `init_sentry` applies them once per process. Every hook runs the
pipeline's redactor (the same object the structlog chain uses) and fails closed: if a
hook itself fails, the event is dropped rather than sent unredacted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

import sentry_sdk
from sentry_sdk.integrations.flask import FlaskIntegration
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.utils import Dsn
from werkzeug.exceptions import HTTPException

from mina.observability.context import tag_value
from mina.observability.pipeline import get_logger
from mina.observability.record import BREADCRUMB_HINT, rendered
from mina.observability.schema import CONTEXT, SentryField
from mina.observability.sentry.body_locals import body_locals, drop_body_locals
from mina.observability.sentry.deferred import DeferredEvents
from mina.observability.sentry.logs import STRING_MAX, LogShaper
from mina.observability.sentry.os_context import os_context
from mina.observability.sentry.payloads import redact_breadcrumb, redact_sentry_event
from mina.observability.sentry.sdk import (
    MinaLoggingIntegration,
    bound_spotlight,
    quiet_sdk_logger,
)
from mina.observability.sentry.sdk_present import REDACTED_MARK, RedactedCrumbs, install_presenter
from mina.observability.sentry.sdk_serialize import install_serializer
from mina.observability.sentry.storm import StormGuard
from mina.observability.sentry.transport import LOGGER, build_transport
from mina.observability.sentry.wellformed import wellformed
from mina.redaction import Redactor
from mina.settings import Settings

__all__ = ["close_sentry", "init_sentry", "sentry_options"]

#: Hook failures are reported on this logger, which Sentry itself ignores (no recursion).
HOOK_LOGGER: Final = LOGGER

_log = get_logger(HOOK_LOGGER)
_lock = threading.Lock()
_initialized: tuple[tuple[Any, ...], Redactor] | None = None

T = TypeVar("T")


def _fail_closed(name: str, hook: Callable[[T, Any], T | None]) -> Callable[[T, Any], T | None]:
    def guarded(item: T, hint: Any) -> T | None:
        try:
            return hook(item, hint)
        except Exception as exc:  # dropping beats sending something unredacted
            _log.warning(
                "sentry.hook_failed", hook=name, error=type(exc).__name__, detail=str(exc)[:200]
            )
            return None

    guarded.__name__ = name
    return guarded


def _redact_crumbs(redactor: Redactor, crumbs: Any) -> Any:
    # Every scope breadcrumb went through before_breadcrumb already; walking up to a
    # hundred of them again for each event, on the calling thread, would change nothing.
    # Breadcrumbs without the mark (passed to capture_event by hand) are redacted here.
    values = crumbs.get("values") if isinstance(crumbs, dict) else None
    if not isinstance(values, list) or len(crumbs) != 1:
        return redactor.redact(crumbs)
    redacted = []
    for crumb in values:
        if isinstance(crumb, dict) and crumb.pop(REDACTED_MARK, False) is True:
            redacted.append(crumb)
        elif isinstance(crumb, dict):
            redacted.append(redact_breadcrumb(redactor, crumb))
        else:
            redacted.append(redactor.redact(crumb))
    return {"values": redacted}


def _context_of_line(event: dict[str, Any], hint: Any) -> None:
    # An event made from a log record says what its stdout line says: the line's context
    # includes a call's own value for a context key (log.error("x", meeting_id=...)),
    # which overrides the bound one there, so it does here too.
    record = hint.get("log_record") if isinstance(hint, dict) else None
    done = rendered(record) if record is not None else None
    if done is None:
        return
    for spec in CONTEXT:
        value = done.line.get(spec.name)
        if value is None or spec.pii:  # personal keys: only ever from the bound context
            continue
        if spec.sentry is SentryField.TAG:
            event.setdefault("tags", {})[spec.name] = tag_value(value)
        elif spec.sentry is SentryField.USER:
            event.setdefault("user", {})[spec.sentry_name or spec.name] = str(value)


def _ignored_status(hint: Any, codes: frozenset[int]) -> bool:
    exc_info = hint.get("exc_info") if isinstance(hint, dict) else None
    exc = exc_info[1] if exc_info else None
    return isinstance(exc, HTTPException) and exc.code in codes


#: Header, cookie and query names Sentry's integrations treat as personal (its own list
#: for ``send_default_pii=False``, matched as substrings): kept out unless
#: ``MINA_SEND_PII=1``. "forwarded-for", not "forwarded": ``X-Forwarded-Proto`` and
#: ``-Host`` name no client (Mina's redactor takes the ``Forwarded`` header itself).
_PERSONAL_NAMES: Final = ["forwarded-for", "-ip", "remote-", "via", "-user"]


def _data_collection(send_pii: bool) -> dict[str, Any]:
    """What Sentry's integrations collect by themselves (the SDK's ``data_collection``).

    Without consent: no user identity, no request bodies, no personal headers; with it,
    bodies of incoming requests too. Either way Mina's ``before_send`` redacts what is
    collected, and no SDK scrubber runs beside it (one marker, one walk).
    """
    terms = [] if send_pii else _PERSONAL_NAMES
    return {
        "user_info": send_pii,
        "cookies": {"mode": "denylist", "terms": terms},
        "http_headers": {"request": {"mode": "denylist", "terms": terms}},
        "http_bodies": ["incoming_request"] if send_pii else [],
        "url_query_params": {"mode": "denylist", "terms": terms},
        "graphql": {"document": send_pii, "variables": send_pii},
        "gen_ai": {"inputs": send_pii, "outputs": send_pii},
        "database_query_data": send_pii,
        "queues": send_pii,
        "stack_frame_variables": True,
        "frame_context_lines": 5,
    }


def sentry_options(
    settings: Settings, redactor: Redactor, storm: StormGuard | None = None
) -> dict[str, Any]:
    """Return the `sentry_sdk.init` keyword arguments for *settings*.

    Logging: INFO and up become breadcrumbs, ERROR and up events; Sentry Logs at
    ``SENTRY_LOGS_LEVEL`` and up only when ``SENTRY_ENABLE_LOGS=1`` (otherwise its
    handler would cost every call for nothing).
    No PII unless ``MINA_SEND_PII=1``, and without it no request body either. Events for
    HTTP errors whose status is in ``SENTRY_IGNORE_STATUS_CODES`` (401, 403, 404) are
    dropped; identical log-originated events beyond ``MINA_SENTRY_STORM_BUDGET`` a window
    are counted instead of sent (`mina.observability.sentry.storm`; *storm*, or a guard
    of the settings' budget and window).
    """
    ignored = settings.sentry_ignore_status_codes
    if storm is None:
        storm = StormGuard(settings.storm_budget, settings.storm_window)
    envelopes = _envelope_url(settings.sentry_dsn)

    def before_send_transaction(event: dict[str, Any], hint: Any) -> dict[str, Any] | None:
        _drop_own_spans(event, envelopes)
        crumbs = event.pop("breadcrumbs", None)
        event = redact_sentry_event(redactor, event)
        if crumbs is not None:
            # Presented breadcrumbs (sdk_present.present_serialized) are redacted and final.
            redacted = type(crumbs) is RedactedCrumbs
            event["breadcrumbs"] = crumbs if redacted else _redact_crumbs(redactor, crumbs)
        return wellformed(event)  # typed fields as Relay reads them (errno numbers, levels)

    def before_send(event: dict[str, Any], hint: Any) -> dict[str, Any] | None:
        if _ignored_status(hint, ignored) or not storm.admit(event, hint):
            return None
        _context_of_line(event, hint)
        if not settings.send_pii:  # a local holding the request's body is the body
            drop_body_locals(event, body_locals(hint))
        return before_send_transaction(event, hint)  # the same redaction for both

    def before_breadcrumb(crumb: dict[str, Any], hint: Any) -> dict[str, Any] | None:
        if isinstance(hint, dict) and hint.get(BREADCRUMB_HINT) is not None:
            # Built by Mina's breadcrumb handler from a structlog call: its message (the
            # event name) and data are what the chain's redactor, this same redactor,
            # already returned, so walking them again changes nothing. The logger name is
            # still scanned; type, level and timestamp are Sentry's own.
            out = dict(crumb)
            category = out.get("category")
            if isinstance(category, str):
                out["category"] = redactor.redact_text(category)
        else:
            out = redact_breadcrumb(redactor, crumb)
        out[REDACTED_MARK] = True
        return out

    logs_level = settings.sentry_logs_level if settings.sentry_enable_logs else None
    breadcrumb_hook = _fail_closed("before_breadcrumb", before_breadcrumb)
    # Tells the fast path (`mina.observability.fastpath`) that this hook is Mina's, and
    # with which redactor, so it may append what this hook would return.
    breadcrumb_hook.mina_redactor = redactor  # type: ignore[attr-defined]
    options: dict[str, Any] = {
        "dsn": settings.sentry_dsn,
        "environment": settings.sentry_environment,
        "release": settings.sentry_release,
        "traces_sample_rate": settings.traces_sample_rate,  # what the sampler uses, for readers
        "traces_sampler": traces_sampler(
            settings.traces_sample_rate, frozenset(settings.traces_ignore_paths)
        ),
        # Continuous profiling tied to sampled transactions: each process decides once
        # whether it profiles, then profiles while a sampled transaction runs.
        "profile_session_sample_rate": settings.profiles_sample_rate,
        "profile_lifecycle": "trace",
        "data_collection": _data_collection(settings.send_pii),
        "enable_logs": settings.sentry_enable_logs,
        "debug": settings.sentry_debug,
        # Events cut text where Sentry Logs records are cut (the SDK's old default; it is
        # unlimited now), so neither output ships a 20 KB string.
        "max_value_length": STRING_MAX,
        "integrations": [
            MinaLoggingIntegration(
                level=logging.INFO,
                event_level=logging.ERROR,
                sentry_logs_level=logs_level,
            ),
            FlaskIntegration(transaction_style="url"),
        ],
        "before_send": _fail_closed("before_send", before_send),
        "before_send_transaction": _fail_closed("before_send_transaction", before_send_transaction),
        "before_breadcrumb": breadcrumb_hook,
        # Context as attributes, redaction and events' size limits (mina.observability.sentry.logs).
        "before_send_log": _fail_closed("before_send_log", LogShaper(redactor)),
    }
    if settings.sentry_spotlight:
        options["spotlight"] = settings.sentry_spotlight
    return options


def traces_sampler(rate: float, ignored: frozenset[str]) -> Callable[[dict[str, Any]], float]:
    """The SDK's ``traces_sampler``: *rate* for every request, 0 for the *ignored* paths.

    Health checks (``SENTRY_TRACES_IGNORE_PATHS``, default ``/healthz``) would otherwise
    spend the transaction quota on nothing: a load balancer probes far more often than
    users call. A decision made upstream (an incoming ``sentry-trace`` with its sampled
    flag) is kept whatever the path, so a sampled trace never loses a piece in the middle;
    an unsampled request still carries its trace id on its lines and outgoing headers.
    """

    def sample(context: dict[str, Any]) -> float:
        parent = context.get("parent_sampled")
        if parent is not None:
            return 1.0 if parent else 0.0
        environ = context.get("wsgi_environ")
        path = environ.get("PATH_INFO") if isinstance(environ, dict) else None
        return 0.0 if path in ignored else rate

    return sample


def _envelope_url(dsn: str | None) -> str | None:
    return Dsn(dsn).to_auth().get_api_url() if dsn else None


def _drop_own_spans(event: dict[str, Any], envelopes: str | None) -> None:
    # The SDK's own POSTs to the ingest, recorded as http.client spans when its sender
    # thread starts inside a transaction: sentry-sdk tells them apart by host only when
    # the DSN has no port (self-hosted Sentry on :9000 has one).
    spans = event.get("spans")
    if envelopes is None or not isinstance(spans, list):
        return
    event["spans"] = [span for span in spans if _span_url(span) != envelopes]


def _span_url(span: Any) -> Any:
    data = span.get("data") if isinstance(span, dict) else None
    return data.get("url") if isinstance(data, dict) else None


def _ingest(dsn: str) -> str:
    # Where events go, without the key (a "dsn" field would be redacted whole anyway).
    parsed = Dsn(dsn)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}{parsed.project_id}"


def _report_storms_on_close(client: Any, storm: StormGuard) -> None:
    # Every way a process stops flushes through Client.close (gunicorn's worker_exit,
    # the SDK's atexit, close_sentry): storm counts of windows still open reach stdout
    # there, not only in the client report.
    close = client.close

    def closing(timeout: float | None = None, callback: Any = None) -> None:
        close(timeout=timeout, callback=callback)  # the event worker's queue first
        storm.report_pending()

    client.close = closing


def _close_client() -> None:
    # Flush and unbind the current client. Never a bare sentry_sdk.init(): it would read
    # SENTRY_DSN from the environment again and start a client without Mina's hooks.
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)


def init_sentry(settings: Settings, redactor: Redactor) -> bool:
    """Initialise Sentry for *settings* once per process; return whether events are
    captured (sent to Sentry, or with no DSN kept in the outbox).

    Calling it again with the same Sentry settings and redactor does nothing; with other
    ones the previous client is flushed and closed first. Logs ``sentry.initialized``
    (environment, release, rates, the ingest host without the key) or ``sentry.disabled``
    with the reason, so operators can tell at a glance.
    """
    global _initialized
    key = (settings.part("sentry"), redactor)
    with _lock:
        if _initialized is not None and _initialized == key:
            return sentry_sdk.get_client().is_active()
        _close_client()
        outbox = settings.sentry_outbox
        if settings.sentry_dsn or outbox is not None:
            ignore_logger(HOOK_LOGGER)
            storm = StormGuard(settings.storm_budget, settings.storm_window)
            options = sentry_options(settings, redactor, storm)
            if outbox is not None:
                # Without a DSN the outbox only keeps envelopes: what Sentry would receive.
                options["transport"] = build_transport(
                    options,
                    outbox,
                    max_envelopes=settings.outbox_max_events,
                    max_bytes=settings.outbox_max_bytes,
                    timeout=settings.sentry_timeout,
                    retry_max=settings.sentry_retry_max,
                )
            # What leaves the process is the same without these three; they only move work
            # off the calling thread or out of it: breadcrumbs serialised once, plain
            # events copied rather than walked, events finished on a worker.
            install_presenter()
            install_serializer()
            sentry_sdk.init(**options)
            DeferredEvents(sentry_sdk.get_client()).install()
            _report_storms_on_close(sentry_sdk.get_client(), storm)
            if settings.sentry_spotlight:
                bound_spotlight()
            sentry_sdk.get_global_scope().set_context("os", os_context())
            quiet_sdk_logger(settings.sentry_debug)
        _initialized = key
    if not settings.sentry_dsn:
        if outbox is None:
            _log.info("sentry.disabled", reason="SENTRY_DSN is not set")
            return False
        _log.info(
            "sentry.disabled",
            reason="SENTRY_DSN is not set",
            outbox=str(outbox.absolute()),
            # No "--dsn DSN" here: the redactor rightly takes a flag's value for a secret.
            events="kept in the outbox; `mina outbox flush` sends them to a DSN",
        )
        return True
    _log.info(
        "sentry.initialized",
        ingest=_ingest(settings.sentry_dsn),
        environment=settings.sentry_environment,
        release=settings.sentry_release,
        traces_sample_rate=settings.traces_sample_rate,
        profiles_sample_rate=settings.profiles_sample_rate,
        sentry_logs=settings.sentry_enable_logs,
        send_pii=settings.send_pii,
        outbox=str(outbox.absolute()) if outbox is not None else None,
    )
    return True


def close_sentry() -> None:
    """Flush and close the client `init_sentry` started; the next `init_sentry` starts afresh.

    For the end of a process or of a test: without it, `init_sentry` with the same settings
    would keep the closed client and report Sentry as off.
    """
    global _initialized
    with _lock:
        _close_client()
        _initialized = None
