"""The fast path: Mina's own structlog calls, written without the generic chain.

The full chain (`mina.logging_config`) runs structlog's processor loop, builds a stdlib
`logging.LogRecord`, formats it with python-json-logger and hands it to Sentry's
LoggingIntegration. For a plain call (``log.info("meeting.created", meeting_id=...)``) on
the default configuration, the same JSON line and the same Sentry breadcrumb can be made
directly, and for ``error`` and ``critical`` the record Sentry's event handler needs: this
module does that, and nothing else.

It is only taken when what leaves the process is identical; otherwise (and always when
in doubt) the call goes through the full chain, the reference. The full chain is taken for:

- a configuration that is not the default one: a handler, filter or formatter other than
  ``logging.yaml``'s stdout handler with Mina's JSON formatter, ``caller_info``, another
  structlog processor list, a patched ``Logger.callHandlers`` other than Sentry's, a
  custom log record factory, Sentry Logs, or another ``before_breadcrumb``;
- ``exception``, ``exc_info``, ``stack_info`` or ``stacklevel``, a breadcrumb-only line,
  and an event-level call on a logger that walks the stack for caller information;
- a call whose event is not a ``str``, that uses positional ``%`` arguments, a key the
  pipeline renames (record attributes such as ``name``, ``message``, ``args``; head keys;
  ``trace_id``/``span_id``), or a key the redactor renames;
- bound context (contextvars) holding anything but ``str``, ``int``, ``float``, ``bool`` or
  ``None``.

What it saves: the processor loop; merging and redacting the context, done once per
context (the values of structlog's context variables and Mina's bound keys) instead of once
per call; what calls of one bound logger, level and list of keys share, worked out once
(`_Plan`: the line's keys in order as a template, whether the keys are harmless names, so
that a call with clean values needs no redaction pass); the LogRecord (but for Sentry's
event handler) and the handlers; the timestamp formatting, cut to a per-second prefix.
Lines go where the stdout handler writes them (see `write_line`).

``MINA_LOG_FAST_PATH=0`` (or ``configure_logging(..., fast_path=False)``) turns it off:
the differential test (``tests/observability/test_fastpath.py``) runs both and compares
the stdout bytes and the Sentry envelopes.

Its parts: this module is the per-call path (`emit`, `write_line`, `level_method`,
`configure`); `mina.observability.fastpath_config` checks the configuration once (`Fast`)
and caches each context's merged keys; `mina.observability.fastpath_plan` works out what
calls of one bound logger, level and list of keys share (`_Plan`).
"""

from __future__ import annotations

import logging
import sys
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from sentry_sdk.scope import Scope
from structlog._config import BoundLoggerLazyProxy

from mina.observability.fastpath_config import Fast
from mina.observability.fastpath_plan import _LEVELS
from mina.observability.pipeline import MinaBoundLogger as _BOUND_LOGGER
from mina.observability.record import RECORD_ATTR, Rendered
from mina.observability.schema import BOUND_KEYS
from mina.observability.sentry.sdk import (
    CrumbRoute,
    active_client,
    append_breadcrumb,
)
from mina.observability.sentry.sdk_present import log_crumb
from mina.observability.stream import URGENT_LEVEL

__all__ = ["configure", "level_method", "write_line"]

_fast: Fast | None = None


def configure(fast: Fast | None) -> None:
    """Install *fast* (None: every call takes the full chain).

    With it, structlog's lazy proxies (``structlog.get_logger()``) that cache their bound
    logger also keep its level methods once resolved (see `_keeping_getattr`); either
    way, the methods they kept are forgotten, so a new level applies.
    """
    global _fast
    _fast = fast
    for proxy in list(_proxies):
        for name in _PROXY_METHODS:
            proxy.__dict__.pop(name, None)
    _proxies.clear()
    BoundLoggerLazyProxy.__getattr__ = (  # type: ignore[method-assign]
        _keeping_getattr if fast is not None else _PROXY_GETATTR
    )


# -- structlog's lazy proxy ---------------------------------------------------------------------

#: The level methods a proxy may keep (those `install_level` puts on the bound logger).
_PROXY_METHODS: Final = frozenset(
    name for name in vars(structlog.make_filtering_bound_logger(0)) if not name.startswith("_")
)
_PROXY_GETATTR: Final = BoundLoggerLazyProxy.__getattr__
_proxies: weakref.WeakSet[BoundLoggerLazyProxy] = weakref.WeakSet()


def _keeping_getattr(self: BoundLoggerLazyProxy, name: str) -> Any:
    # structlog's proxy resolves itself on every attribute access (``log.debug`` is a
    # failed lookup, then __getattr__, bind() and a getattr on the bound logger). One that
    # caches its bound logger (cache_logger_on_first_use) returns the same one forever, so
    # its level methods can stay on the proxy: a filtered call is then one lookup and an
    # empty call. `configure` drops them when the level or the chain changes.
    value = _PROXY_GETATTR(self, name)
    if (
        name in _PROXY_METHODS
        and "bind" in self.__dict__  # structlog replaced bind by the cached one
        and type(getattr(value, "__self__", None)) is _BOUND_LOGGER
    ):
        self.__dict__[name] = value
        _proxies.add(self)
    return value


_stamp_second = -1
_stamp_prefix = ""
_stamp_fields: tuple[int, int, int, int, int, int] = (1970, 1, 1, 0, 0, 0)


#: "000" to "999": the microseconds as two table lookups, not a formatted integer.
_DIGITS: Final = tuple(f"{n:03d}" for n in range(1000))


def _timestamp(now_ns: int) -> str:
    # `add_timestamp`'s format, with the part up to the second made once per second.
    global _stamp_second, _stamp_prefix, _stamp_fields
    second = now_ns // 1_000_000_000
    if second != _stamp_second:
        moment = datetime.fromtimestamp(second, UTC)
        _stamp_prefix = moment.strftime("%Y-%m-%dT%H:%M:%S.")
        _stamp_fields = (
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
        )
        _stamp_second = second
    micros = now_ns // 1000 % 1_000_000
    return f"{_stamp_prefix}{_DIGITS[micros // 1000]}{_DIGITS[micros % 1000]}Z"


def _moment(now_ns: int) -> datetime:
    # The breadcrumb's datetime for the same instant as `_timestamp` (called just before),
    # to the microsecond: its serialised form is the line's timestamp string. (The
    # constructor: ``replace(microsecond=...)`` costs four times as much.)
    return datetime(*_stamp_fields, now_ns % 1_000_000_000 // 1000, UTC)


def write_line(fast: Fast, line: dict[str, Any], urgent: bool) -> None:
    """Serialise *line* with the stdout formatter and write it where the stdout handler
    writes the lines it formats.

    A handler with a line writer (``mina.observability.stream.LineHandler``) gets the
    bytes submitted to that writer, in order with its own lines (the UTF-8 its ``emit``
    would encode, without decoding and encoding them again; *urgent*, a warning or an
    error, as its ``emit`` says it); a `logging.StreamHandler`
    gets what its ``emit`` does: one write and a flush, under its lock.
    """
    handler = fast.handler
    writer = getattr(handler, "writer", None)
    if writer is not None:
        writer.submit(fast.formatter.json_bytes(line) + b"\n", urgent=urgent)
        return
    text = fast.formatter.jsonify_log_record(line) + "\n"
    with handler.lock:  # type: ignore[union-attr]
        stream = handler.stream
        stream.write(text)
        stream.flush()


def _route(logger: logging.Logger, levelno: int) -> bool:
    # Whether a record of *levelno* on *logger* would reach exactly the root's stdout
    # handler: no filter on the logger, no handler on the way, propagation up to root.
    if logger.disabled or logger.filters:
        return False
    node = logger
    while node.parent is not None:
        if node.handlers or not node.propagate:
            return False
        node = node.parent
    fast = _fast
    assert fast is not None
    handler = fast.handler
    return (
        len(node.handlers) == 1
        and node.handlers[0] is handler
        and handler.formatter is fast.formatter
        and levelno >= handler.level
        and not handler.filters
    )


def emit(self: Any, method: str, event: Any, kw: dict[str, Any]) -> bool:
    """Log one call through the fast path; return False (having done nothing) when it
    must take the full chain."""
    fast = _fast
    if fast is None or type(event) is not str:
        return False
    processors = self._processors
    # The pipeline's own list, with the processors it was built with (structlog's
    # capture_logs, for one, swaps its contents).
    if processors is not fast.processors or processors != fast.chain:
        return False
    stdlib: logging.Logger = self._logger
    levelno = _LEVELS[method]
    if not stdlib.isEnabledFor(levelno):
        return True  # the chain would run for nothing: the record is dropped by stdlib
    plan = fast.plan(self, method, kw)
    if not plan.usable:
        return False
    if not _route(stdlib, levelno) or logging.getLogRecordFactory() is not logging.LogRecord:
        return False

    # Sentry: which of its handlers the record would reach, decided before anything runs.
    sentry, current = active_client()
    wrapper = logging.Logger.callHandlers
    if not plan.current(sentry, wrapper):
        plan.decide(fast.category, sentry, wrapper)
    if not plan.sentry_ok:
        return False

    # The chain's event dict: the logger's context, the call's keys, the event, then the
    # contextvars the call did not set.
    own = plan.own
    event_dict = {**own, **kw} if own else dict(kw)
    event_dict["event"] = event
    redactor = fast.redactor
    if not (plan.harmless and redactor.clean_values(event_dict.values())):
        redactor(None, method, event_dict)  # in place, as in the chain
        if tuple(event_dict) != plan.keys:
            return False  # the redactor renamed a key: the chain's order
    context = fast.context()
    if context is None:
        return False
    # `add_trace_ids`: the active span's ids, inside a transaction with a client only.
    span = current.span if sentry is not None and current is not None else None
    layout = plan.layout(context.shape, BOUND_KEYS.get(), span is not None)
    now_ns = time.time_ns()
    line = layout.template.copy()  # in schema order; values replaced keep their place
    line.update(context.values)
    line.update(event_dict)  # the call's keys win, as merge_contextvars lets them
    line["timestamp"] = _timestamp(now_ns)
    if span is not None:
        line["trace_id"] = span.trace_id
        line["span_id"] = span.span_id
    # The formatter's own serialisation: what it does to a finished line, this does too.
    write_line(fast, line, levelno >= URGENT_LEVEL)

    # Sentry, decided for an active client only (an event, a breadcrumb, both or neither).
    route = plan.route
    if route is None or not (plan.event or plan.crumb):
        return True
    data = {key: line[key] for key in layout.data}  # the call's keys: extra, crumb data
    message = event_dict["event"]
    if plan.event:
        _event(stdlib, levelno, message, line, data, route)
    if plan.crumb:
        crumb = log_crumb(plan.crumb_level, plan.category, message, _moment(now_ns), data)
        append_breadcrumb(Scope.get_isolation_scope(), crumb, route.max_breadcrumbs)
    return True


def _event(
    stdlib: logging.Logger,
    levelno: int,
    event: str,
    line: dict[str, Any],
    call: dict[str, Any],
    route: CrumbRoute,
) -> None:
    # The record the chain would hand Sentry's LoggingIntegration (`RenderToLogKwargs`:
    # the event as message, the call's keys as extras, the `Rendered` line), given to its
    # event handler as `Logger._log` and Sentry's callHandlers wrapper would. Its
    # breadcrumb follows, made by the caller as for any other level.
    handler = route.event_handler
    if handler is None or levelno < handler.level:
        return
    fn, lno, func, sinfo = stdlib.findCaller(False, 1)
    extra = dict(call)
    extra[RECORD_ATTR] = Rendered(line, call, True)
    record = stdlib.makeRecord(stdlib.name, levelno, fn, lno, event, (), None, func, extra, sinfo)
    handler.handle(record)


def level_method(name: str, full: Callable[..., Any]) -> Callable[..., Any]:
    """Return the bound logger method *name*: the fast path, else *full* (the guarded chain).

    Levels the fast path does not serve get *full* back unchanged.
    """
    if name not in _LEVELS:
        return full

    def method(self: Any, event: Any = None, *args: Any, **kw: Any) -> Any:
        if not args:
            try:
                if emit(self, name, event, kw):
                    return None
            except Exception as exc:  # never into the caller; the chain still logs it
                _report(event, exc)
        return full(self, event, *args, **kw)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = full.__doc__
    return method


def _report(event: object, exc: Exception) -> None:
    try:
        sys.stderr.write(
            f"mina: logging failed for event {str(event)[:200]!r}: "
            f"{type(exc).__name__}: {str(exc)[:200]}\n"
        )
    except Exception:  # stderr closed: nothing left to tell
        return
