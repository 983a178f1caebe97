"""The fast path's plans: what calls of one bound logger, level and list of keys share.

A `_Plan` holds, worked out once, the chain's key order, whether a key sends the call to
the full chain, the line layouts (`_Layout`, one per context shape) and the Sentry
decisions (breadcrumb or not, its category), which `mina.observability.fastpath` checks
by identity on each call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from mina.observability.pipeline import AppCallerLogger
from mina.observability.processors import RESERVED_RECORD_KEYS, ordered
from mina.observability.record import BREADCRUMB_ONLY
from mina.observability.schema import HEAD_KEYS, SCOPED_KEYS
from mina.observability.sentry.sdk import (
    LOGGING_TO_EVENT_LEVEL,
    CrumbRoute,
    ignored_exactly,
    is_sentry_call_handlers,
    sentry_ignored,
)
from mina.redaction import Redactor

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
_CACHE_MAX: Final = 1024
_ORIGINAL_CALL_HANDLERS: Final = logging.Logger.callHandlers


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

    def decide(self, category: Callable[[str, Redactor], str], client: Any, wrapper: Any) -> None:
        """Make the Sentry decisions for the active *client* (None: none is active, so
        Sentry takes nothing) and the ``callHandlers`` *wrapper*; *category* makes a
        logger name the breadcrumb category (`Fast.category`)."""
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
            self.category = category(name, route.hook_redactor)

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


def _no_caller(stdlib: logging.Logger) -> bool:
    # Whether *stdlib*'s records say "unknown" for the caller without walking the stack.
    return type(stdlib).findCaller is AppCallerLogger.findCaller and not AppCallerLogger.caller_info
