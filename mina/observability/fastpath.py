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

Over 400 lines because it reproduces, for one call, each step the full chain takes
(context, redaction, the line, the breadcrumb): the differential test holds it against the
chain as one unit, and split apart its steps would be harder to compare.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from sentry_sdk.scope import Scope
from structlog import contextvars as structlog_contextvars
from structlog._config import BoundLoggerLazyProxy

from mina.observability.formatters import JsonFormatter
from mina.observability.pipeline import AppCallerLogger
from mina.observability.pipeline import MinaBoundLogger as _BOUND_LOGGER
from mina.observability.processors import RESERVED_RECORD_KEYS, ordered
from mina.observability.record import BREADCRUMB_ONLY, RECORD_ATTR, Rendered
from mina.observability.schema import BOUND_KEYS, HEAD_KEYS, SCOPED_KEYS
from mina.observability.sentry.sdk import (
    LOGGING_TO_EVENT_LEVEL,
    CrumbRoute,
    active_client,
    append_breadcrumb,
    ignored_exactly,
    is_sentry_call_handlers,
    sentry_ignored,
)
from mina.observability.sentry.sdk_present import log_crumb
from mina.observability.stream import URGENT_LEVEL
from mina.redaction import Redactor

__all__ = ["Fast", "configure", "level_method", "write_line"]

#: The levels the fast path serves (structlog method name -> stdlib level).
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "msg": logging.INFO,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
#: What structlog's ``add_log_level`` writes for each method (aliases: their level's).
_LEVEL_NAMES: Final = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "warn": "warning",
    "msg": "info",
    "error": "error",
    "critical": "critical",
}

#: Keys whose presence means the full chain: renamed by the pipeline, log keyword
#: arguments, or keys the pipeline itself writes.
_FALLBACK_KEYS: Final = (RESERVED_RECORD_KEYS - {"exc_info", "stack_info"}) | {
    "exc_info",
    "stack_info",
    "stacklevel",
    "level",
    "logger",
    "timestamp",
    "event",
    "trace_id",
    "span_id",
    "_record",
    BREADCRUMB_ONLY,
}
#: Keys that stay out of Sentry's breadcrumb data (see `RenderToLogKwargs`).
_HIDDEN: Final = frozenset(HEAD_KEYS) | {"trace_id", "span_id"} | SCOPED_KEYS
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_CACHE_MAX: Final = 1024
#: The stdout handler with a bounded line writer (its lines are submitted to the writer).
_LINE_HANDLER: Final = ("mina.observability.stream", "LineHandler")
_ORIGINAL_CALL_HANDLERS: Final = logging.Logger.callHandlers
_PREFIX: Final = "structlog_"


def _trie_hash(var: contextvars.ContextVar[Any]) -> int:
    # The hash a context's trie files a variable under (CPython's hamt_hash).
    full = hash(var) & 0xFFFFFFFFFFFFFFFF
    return (full & 0xFFFFFFFF) ^ (full >> 32)


class _Context:
    """The bound contextvars, merged and redacted as the chain would, and their keys in
    that order (one tuple object per distinct order, so a request's context shares its
    line layouts with every other request's)."""

    __slots__ = ("shape", "values")

    def __init__(self, values: dict[str, Any], shape: tuple[str, ...]) -> None:
        self.values = values
        self.shape = shape


class _Layout:
    """A line's keys in schema order, as a template, and its breadcrumb data's keys in
    chain order.

    The template holds every key of the line in its place, with the level and the logger
    filled in: a call copies it and updates it with the context and its own keys, which
    replaces values and keeps the order (no dict built only to be reordered).
    """

    __slots__ = ("data", "template")

    def __init__(self, template: dict[str, Any], data: tuple[str, ...]) -> None:
        self.template = template
        self.data = data


class Fast:
    """What one configuration allows, checked once; `configure` installs it.

    :param redactor: the pipeline's redactor.
    :param processors: the pipeline's structlog processor list (the fast path serves bound
        loggers that use this very list).
    :param handler: the stdout handler ``logging.yaml`` made, with Mina's JSON formatter.
    """

    __slots__ = (
        "_contexts",
        "_names",
        "_orders",
        "_plans",
        "_shapes",
        "chain",
        "formatter",
        "handler",
        "processors",
        "redactor",
    )

    def __init__(
        self,
        redactor: Redactor,
        processors: list[Any],
        handler: logging.StreamHandler[Any],
        formatter: JsonFormatter,
    ) -> None:
        self.redactor = redactor
        self.processors = processors
        self.chain = list(processors)
        self.handler = handler
        self.formatter = formatter
        # (ids of the context values, bound keys) -> (values kept alive, merged context)
        self._contexts: dict[tuple[int, ...], tuple[tuple[Any, ...], _Context | None]] = {}
        self._shapes: dict[tuple[str, ...], tuple[str, ...]] = {}
        # redacted logger names, for Sentry's breadcrumb category
        self._names: dict[str, str] = {}
        self._plans: dict[tuple[int, str, tuple[str, ...]], _Plan] = {}
        # structlog's variables set in a context -> the order the context lists them in
        self._orders: dict[frozenset[Any], tuple[contextvars.ContextVar[Any], ...]] = {}

    @classmethod
    def build(cls, redactor: Redactor, processors: list[Any]) -> Fast | None:
        """Return the fast path for the current stdlib configuration, or None if it is
        not the default one (then every call takes the full chain)."""
        root = logging.getLogger()
        if len(root.handlers) != 1 or root.filters:
            return None
        handler = root.handlers[0]
        formatter = handler.formatter
        kind = type(handler)
        if (
            not isinstance(handler, logging.StreamHandler)
            or not (
                kind is logging.StreamHandler
                or (kind.__module__, kind.__qualname__) == _LINE_HANDLER
            )
            or handler.filters
            or handler.terminator != "\n"
            or not isinstance(formatter, JsonFormatter)
            or type(formatter) is not JsonFormatter
            or formatter.prefix
            or formatter.static_fields
            or formatter.rename_fields
        ):
            return None
        return cls(redactor, processors, handler, formatter)

    def context(self) -> _Context | None:
        """Return the bound contextvars, merged and redacted as the chain would (cached),
        and their keys in that order (one tuple object per distinct order, so a request's
        context shares its line layouts with every other request's).

        None when they hold something the fast path leaves to the full chain.
        """
        variables = structlog_contextvars._CONTEXT_VARS
        key = (*[id(var.get()) for var in variables.values()], id(BOUND_KEYS.get()))
        hit = self._contexts.get(key)
        if hit is not None:
            return hit[1]
        values = tuple([var.get() for var in variables.values()])
        bound = BOUND_KEYS.get()
        merged = self._merge(tuple(variables.values()), values)
        found = None
        if merged is not None:
            shape = tuple(merged)
            if len(self._shapes) >= _CACHE_MAX:
                self._shapes.clear()  # layouts keep the shapes they were made for
            found = _Context(merged, self._shapes.setdefault(shape, shape))
        if len(self._contexts) >= _CACHE_MAX:
            self._contexts.clear()
        # The values (and the bound keys) stay referenced, so their ids stay theirs.
        self._contexts[key] = ((*values, bound), found)
        return found

    def _merge(
        self, variables: tuple[contextvars.ContextVar[Any], ...], values: tuple[Any, ...]
    ) -> dict[str, Any] | None:
        # structlog's merge_contextvars, in its order, then the chain's checks on its keys.
        # It walks the whole context (every library's variables) in the context's own
        # order, which for a given set of variables is always the same: that order is
        # learnt once per set, and then only structlog's variables are read.
        pairs = zip(variables, values, strict=True)
        present = {var: value for var, value in pairs if value is not Ellipsis}
        names = frozenset(present)
        order = self._orders.get(names)
        if order is None:
            order = tuple(var for var in contextvars.copy_context() if var in present)
            # The context is a hash trie: its order is that of the variables' 32-bit
            # hashes, whatever else it holds, unless two of them share one.
            if len({_trie_hash(var) for var in order}) == len(order):
                if len(self._orders) >= _CACHE_MAX:
                    self._orders.clear()
                self._orders[names] = order
        merged: dict[str, Any] = {}
        for var in order:
            merged.setdefault(var.name[len(_PREFIX) :], present[var])
        if not _FALLBACK_KEYS.isdisjoint(merged):
            return None
        if any(type(value) not in _SCALARS for value in merged.values()):
            return None
        keys = list(merged)
        redacted = self.redactor(None, "info", dict(merged))
        if list(redacted) != keys:  # a key the redactor renamed moves: the chain's order
            return None
        return dict(redacted)

    def plan(self, bound: Any, method: str, kw: dict[str, Any]) -> _Plan:
        """Return the `_Plan` of a call of *bound*'s *method* with keys *kw* (cached)."""
        key = (id(bound), method, tuple(kw))
        plan = self._plans.get(key)
        if plan is None or plan.bound is not bound:
            if len(self._plans) >= _CACHE_MAX:
                self._plans.clear()
            plan = self._plans[key] = _Plan(bound, method, kw, self.redactor)
        return plan

    def category(self, name: str, redactor: Redactor) -> str:
        """Return *name* redacted, as ``before_breadcrumb`` makes the breadcrumb category."""
        cached = self._names.get(name)
        if cached is None:
            cached = redactor.redact_text(name)
            if len(self._names) >= _CACHE_MAX:
                self._names.clear()
            self._names[name] = cached
        return cached


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


_routes: dict[int, CrumbRoute] = {}


def _crumb_route(client: Any) -> CrumbRoute:
    route = _routes.get(id(client))
    if route is None or route.client is not client:
        _routes.clear()  # one client at a time in practice: forget the others
        route = _routes[id(client)] = CrumbRoute(client)
    return route


class _Plan:
    """What calls of one bound logger, level and list of call keys share, worked out once.

    A bound logger is immutable (``bind`` makes another), so its stdlib logger and its own
    context are fixed; with the call's keys, so are the chain's key order, whether a key
    sends the call to the full chain, and the line layouts (one per context shape). The
    Sentry decisions (breadcrumb or not, its category) hold while the client, the
    ``callHandlers`` wrapper, the ignored loggers and the breadcrumb handler's level do;
    each call checks those by identity and equality and decides again when one changed.
    """

    __slots__ = (
        "bound",
        "category",
        "client",
        "crumb",
        "crumb_level",
        "event",
        "handler_level",
        "harmless",
        "ignored",
        "keys",
        "layouts",
        "level",
        "levelno",
        "own",
        "route",
        "sentry_ok",
        "stdlib",
        "usable",
        "wrapper",
    )

    def __init__(self, bound: Any, method: str, kw: dict[str, Any], redactor: Redactor) -> None:
        self.bound = bound  # kept alive: the plan is found by its id
        self.stdlib: logging.Logger = bound._logger
        self.levelno = _LEVELS[method]
        self.level = _LEVEL_NAMES[method]
        self.crumb_level = LOGGING_TO_EVENT_LEVEL[self.levelno]
        self.own: dict[str, Any] = bound._context
        # The chain's event dict keys, in its order: the logger's context, the call's
        # keys, then the event.
        keys = (*dict.fromkeys([*self.own, *kw]), "event")
        self.keys: tuple[str, ...] = keys
        self.usable = _FALLBACK_KEYS.isdisjoint(keys[:-1])
        # Harmless key names: a call whose values are clean needs no redaction pass.
        self.harmless = redactor.harmless_keys(keys)
        self.layouts: dict[tuple[int, frozenset[str], bool], tuple[_Layout, tuple[str, ...]]] = {}
        self.client: Any = None  # the Sentry decisions below were made for these
        self.wrapper: Any = None
        self.ignored: frozenset[str] = frozenset()
        self.handler_level: int | None = None
        self.route: CrumbRoute | None = None
        self.sentry_ok = False  # False: the full chain (another hook, handler or level)
        self.crumb = False  # a breadcrumb is made (decided for an active client only)
        self.event = False  # the record becomes a Sentry event too (ERROR and up)
        self.category = ""

    def decide(self, fast: Fast, client: Any, wrapper: Any) -> None:
        """Make the Sentry decisions for the active *client* (None: none is active, so
        Sentry takes nothing) and the ``callHandlers`` *wrapper*."""
        self.client = client
        self.wrapper = wrapper
        self.ignored = frozenset(sentry_ignored())
        self.sentry_ok = True
        self.crumb = False
        self.event = False
        self.route = None
        self.handler_level = None
        if wrapper is _ORIGINAL_CALL_HANDLERS:
            return
        if not is_sentry_call_handlers(wrapper):
            self.sentry_ok = False
            return
        if client is None:
            return
        route = self.route = _crumb_route(client)
        name = self.stdlib.name
        if not route.plain:
            self.sentry_ok = False
            return
        if ignored_exactly(name):
            return
        if route.event_level is not None and self.levelno >= route.event_level:
            # The event is made from a record, as the chain's: one the fast path can make
            # the same way only when its logger skips the stack walk (no caller info).
            if not _no_caller(self.stdlib):
                self.sentry_ok = False
                return
            self.event = True
        handler = route.crumb_handler
        if handler is None:
            return
        self.handler_level = handler.level
        if self.levelno >= handler.level and handler.can_record_name(name):
            if route.hook_redactor is None:
                self.sentry_ok = False  # another before_breadcrumb: only the chain calls it
                return
            self.crumb = True
            self.category = fast.category(name, route.hook_redactor)

    def current(self, client: Any, wrapper: Any) -> bool:
        """Whether the Sentry decisions still hold."""
        if self.client is not client or self.wrapper is not wrapper:
            return False
        if self.ignored != sentry_ignored():
            return False
        route = self.route
        handler = route.crumb_handler if route is not None else None
        return handler is None or handler.level == self.handler_level

    def layout(self, shape: tuple[str, ...], bound: frozenset[str], traced: bool) -> _Layout:
        """Return the order of the line's keys and of the breadcrumb data's keys for this
        plan's keys in a context whose keys are *shape*, in order (cached per shape)."""
        if type(bound) is not frozenset:  # `bind` leaves a set there
            bound = frozenset(bound)
        key = (id(shape), bound, traced)
        hit = self.layouts.get(key)
        if hit is not None and hit[1] is shape:
            return hit[0]
        # The chain's event dict, in the chain's order, with placeholders for values.
        chain = dict.fromkeys(self.keys)
        for name in shape:
            chain.setdefault(name)
        chain.update(dict.fromkeys(("level", "logger", "timestamp")))
        if traced:
            chain.update(dict.fromkeys(("trace_id", "span_id")))
        hidden = _HIDDEN | bound
        template = ordered(chain)
        template["level"] = self.level
        template["logger"] = self.stdlib.name
        made = _Layout(template, tuple(k for k in chain if k not in hidden))
        if len(self.layouts) >= _CACHE_MAX:
            self.layouts.clear()
        self.layouts[key] = (made, shape)  # the shape kept alive: its id stays its own
        return made


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
        plan.decide(fast, sentry, wrapper)
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


def _no_caller(stdlib: logging.Logger) -> bool:
    # Whether *stdlib*'s records say "unknown" for the caller without walking the stack.
    return type(stdlib).findCaller is AppCallerLogger.findCaller and not AppCallerLogger.caller_info


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
