"""What a Sentry Logs record carries: the log context, redaction, and events' size limits.

Sentry's logging handler builds a Logs record from the stdlib record alone, so the
request, user and meeting a line was written in (structlog's context variables) never
reach it, and a 20 KB string or a 500-item list goes out whole. `LogShaper` is the
``before_send_log`` hook that fixes both. The SDK calls it on the thread that logged,
inside that thread's context, so the bound context is the line's own.

Limits, the ones Sentry's serializer applies to an event's data: lists and mappings keep
their first ``MAX_BREADTH`` items and nest at most ``MAX_DEPTH`` levels; strings are cut
to ``STRING_MAX`` characters (the SDK's ``max_value_length`` before it became unlimited by
default), the body to ``BODY_MAX`` (Sentry's limit for an event message).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import structlog
from sentry_sdk.serializer import MAX_DATABAG_BREADTH, MAX_DATABAG_DEPTH
from sentry_sdk.utils import safe_repr

from mina.observability.sentry.payloads import redact_sentry_log
from mina.redaction import Redactor

__all__ = ["BODY_MAX", "MAX_BREADTH", "MAX_DEPTH", "STRING_MAX", "LogShaper"]

#: Items kept of a list or mapping (Sentry's ``MAX_DATABAG_BREADTH``).
MAX_BREADTH: Final = MAX_DATABAG_BREADTH
#: Levels of nesting kept (Sentry's ``MAX_DATABAG_DEPTH``); deeper values become reprs.
MAX_DEPTH: Final = MAX_DATABAG_DEPTH
#: Characters kept of a string attribute.
STRING_MAX: Final = 1024
#: Characters kept of the body (Sentry trims an event's message at 8,192).
BODY_MAX: Final = 8192

_ELLIPSIS: Final = "..."
_SCALARS: Final = (bool, int, float)


def _cut(text: str, limit: int) -> str:
    # The SDK's own marker and arithmetic (``strip_string``): the result is *limit* long.
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _trim(value: Any, depth: int) -> Any:
    # A structure cut like an event's databag, still a structure (rendered afterwards).
    if depth <= 0:
        return safe_repr(value)
    if isinstance(value, Mapping):
        items = list(value.items())[:MAX_BREADTH]
        return {str(key): _trim(item, depth - 1) for key, item in items}
    if isinstance(value, list | tuple | set | frozenset):
        return [_trim(item, depth - 1) for item in list(value)[:MAX_BREADTH]]
    return value


def _attribute(value: Any, string_max: int) -> Any:
    """Return *value* as a Logs attribute within the limits.

    Booleans and numbers pass; strings are cut; a list of one scalar type stays a list
    (Sentry sends it as an array) of at most ``MAX_BREADTH`` items; anything else is
    trimmed like an event's data and sent as its cut repr, as the SDK would send it whole.
    """
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, str):
        return _cut(value, string_max)
    if isinstance(value, list | tuple) and value:
        kind = type(value[0])
        if kind in (str, *_SCALARS) and all(type(item) is kind for item in value):
            kept = list(value[:MAX_BREADTH])
            return [_cut(item, string_max) for item in kept] if kind is str else kept
    if isinstance(value, list | tuple) and not value:
        return []
    return _cut(safe_repr(_trim(value, MAX_DEPTH)), string_max)


class LogShaper:
    """The ``before_send_log`` hook: add the bound context, redact, trim.

    Context keys (``request_id``, ``method``, ``path``, ``route``, ``user_id``,
    ``username``, ``meeting_id`` and whatever `mina.context.bind` added) become
    attributes under the names the stdout line uses, unless the record already has an
    attribute of that name. Redaction is the pipeline's redactor, through the
    same function every other Sentry hook uses for logs.
    """

    __slots__ = ("_redactor", "_string_max")

    def __init__(self, redactor: Redactor, string_max: int | None = None) -> None:
        self._redactor = redactor
        self._string_max = STRING_MAX if string_max is None else string_max

    def __call__(self, log: dict[str, Any], hint: Any) -> dict[str, Any] | None:
        """Return the shaped copy of *log*."""
        attributes = log.get("attributes")
        merged = dict(attributes) if isinstance(attributes, Mapping) else {}
        for key, value in structlog.contextvars.get_contextvars().items():
            if value is not None:
                merged.setdefault(key, value)
        shaped = redact_sentry_log(self._redactor, {**log, "attributes": merged})
        limit = self._string_max
        shaped["attributes"] = {
            name: _attribute(value, limit) for name, value in shaped["attributes"].items()
        }
        body = shaped.get("body")
        if isinstance(body, str):
            shaped["body"] = _cut(body, BODY_MAX)
        return shaped
