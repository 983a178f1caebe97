"""Performance monitoring helpers: spans as context managers and decorators.

Thin over `sentry_sdk.start_span` so the SDK's own spelling keeps working
(``with sentry_sdk.start_span(op="db", name="SELECT meetings")``) while Mina code can
write ``with span("db", "SELECT meetings")`` or decorate a function with ``@span("ai")``.
Log lines written inside a span carry its ``span_id`` (see
`mina.observability.processors.add_trace_ids`).
With Sentry off, or the trace not sampled, a span costs next to nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import sentry_sdk

__all__ = ["span"]

P = ParamSpec("P")
R = TypeVar("R")


class span:  # lower case: used like a function, as the SDK's start_span is
    """A Sentry span around a block or a function call.

    :param op: the span's operation, such as ``"db"``, ``"ai"`` or ``"http.client"``.
    :param description: what it does (``"INSERT meetings"``); a decorated function's
        qualified name when omitted.
    :param data: span data (sizes, counts, model names); redacted like everything else.
    """

    __slots__ = ("_cm", "data", "description", "op")

    def __init__(self, op: str, description: str | None = None, **data: Any) -> None:
        self.op = op
        self.description = description
        self.data = data

    @contextmanager
    def _run(self, description: str | None) -> Iterator[sentry_sdk.tracing.Span]:
        with sentry_sdk.start_span(op=self.op, name=description) as current:
            for key, value in self.data.items():
                current.set_data(key, value)
            yield current

    def __enter__(self) -> sentry_sdk.tracing.Span:
        # Kept per instance: a `span` object is entered once, like the SDK's spans.
        self._cm = self._run(self.description)
        return self._cm.__enter__()

    def __exit__(self, *exc: Any) -> bool | None:
        return self._cm.__exit__(*exc)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        description = self.description or func.__qualname__

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._run(description):
                return func(*args, **kwargs)

        return wrapper
