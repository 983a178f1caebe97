"""The fast path's configuration: whether this process's logging is the default one
(`Fast.build`), and the bound context merged and redacted once per context (`Fast.context`).
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any, Final

from structlog import contextvars as structlog_contextvars

from mina.observability.fastpath_plan import _CACHE_MAX, _FALLBACK_KEYS, _Plan
from mina.observability.formatters import JsonFormatter
from mina.observability.schema import BOUND_KEYS
from mina.redaction import Redactor

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
#: The stdout handler with a bounded line writer (its lines are submitted to the writer).
_LINE_HANDLER: Final = ("mina.observability.stream", "LineHandler")
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
