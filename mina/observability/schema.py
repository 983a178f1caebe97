"""The log line's schema: head keys, the registry of context keys, and well-known call keys.

One table says, for every piece of context Mina knows, where it sits on the line, what
type its value has, and which Sentry field carries it. The line order
(`mina.observability.processors.ordered`), the keys kept out of Sentry's ``extra``, and
binding (`mina.observability.context`) are all derived from it.

Where a new piece of context belongs: a `ContextKey` in `CONTEXT`, at the position it
should take on the line, then a ``bind_*`` function in `mina.observability.context` if
it needs one. A key a call passes often (``status``, ``duration_ms``) belongs in
`CALL_KEYS`, so it keeps one meaning and one type across the whole schema.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import Final

__all__ = [
    "BOUND_KEYS",
    "CALL_KEYS",
    "CONTEXT",
    "CONTEXT_ORDER",
    "HEAD_KEYS",
    "SCOPED_KEYS",
    "CallKey",
    "ContextKey",
    "SentryField",
    "context_key",
]

#: Keys that open every line, in this order.
HEAD_KEYS: Final = ("timestamp", "level", "logger", "event")


class SentryField(Enum):
    """Where Sentry carries a context key (never in ``extra``, which it trims to 10 keys)."""

    #: A tag: searchable, cut to 200 characters.
    TAG = "tag"
    #: A field of Sentry's ``user`` (``id``, ``username``, ``email``).
    USER = "user"
    #: Sentry's own request interface, filled by its Flask integration.
    REQUEST = "request"
    #: The ``trace`` context, filled by Sentry's tracing.
    TRACE = "trace"


@dataclass(frozen=True, slots=True)
class ContextKey:
    """One piece of context: its name on the line, value type and Sentry field.

    :param sentry_name: the name inside the Sentry field when it differs (``user_id`` is
        the user's ``id``).
    :param pii: personal data, bound only with ``MINA_SEND_PII=1``.
    """

    name: str
    type: type | tuple[type, ...]
    sentry: SentryField
    doc: str
    sentry_name: str | None = None
    pii: bool = False


#: Every context key, in the order it follows the head on a line.
CONTEXT: Final = (
    ContextKey("request_id", str, SentryField.TAG, "the request's id, echoed as X-Request-ID"),
    ContextKey("method", str, SentryField.REQUEST, "the HTTP method"),
    ContextKey("path", str, SentryField.REQUEST, "the request path, without the query"),
    ContextKey("route", str, SentryField.TAG, "the matched URL rule; absent when none matched"),
    ContextKey("user_id", (int, str), SentryField.USER, "the authenticated user", "id"),
    ContextKey("username", str, SentryField.USER, "the authenticated user's name"),
    ContextKey("meeting_id", str, SentryField.TAG, "the meeting being worked on"),
    ContextKey("trace_id", str, SentryField.TRACE, "the Sentry trace this line belongs to"),
    ContextKey("span_id", str, SentryField.TRACE, "the active span of that trace"),
    ContextKey("user_email", str, SentryField.USER, "the user's email", "email", pii=True),
    ContextKey("client_ip", str, SentryField.REQUEST, "the client's address", pii=True),
    ContextKey("user_agent", str, SentryField.REQUEST, "the client's User-Agent, cut to 256"),
)

_BY_NAME: Final = {key.name: key for key in CONTEXT}

#: Context key names in line order.
CONTEXT_ORDER: Final = tuple(key.name for key in CONTEXT)

#: Context keys that Sentry carries in its own fields (tags, user, request): the pipeline
#: keeps them out of the event's ``extra`` and the breadcrumb's ``data``.
SCOPED_KEYS: Final = frozenset(key.name for key in CONTEXT if key.sentry is not SentryField.TRACE)


#: Keys that `mina.observability.context.bind` added beyond the registry, in the current
#: context (per context, not per process: a key bound in one request must not vanish
#: from another request's Sentry ``extra``). Sentry carries them as tags, so the pipeline
#: keeps them out of ``extra`` and breadcrumb ``data`` like `SCOPED_KEYS`.
BOUND_KEYS: Final[ContextVar[frozenset[str]]] = ContextVar("mina_bound_keys", default=frozenset())


def context_key(name: str) -> ContextKey | None:
    """Return the registered context key called *name*, if any."""
    return _BY_NAME.get(name)


@dataclass(frozen=True, slots=True)
class CallKey:
    """A key that Mina's own calls pass, with the one meaning and type it has everywhere."""

    name: str
    type: type | tuple[type, ...]
    doc: str


#: Keys with one meaning across every event that carries them.
CALL_KEYS: Final = {
    key.name: key
    for key in (
        CallKey("status", int, "an HTTP status code"),
        CallKey("duration_ms", float, "request latency in milliseconds"),
        CallKey("size", (int, type(None)), "a response body's size in bytes, when known"),
        CallKey("error", str, "an error's code word, as in the JSON error body"),
        CallKey("exception_type", str, "the qualified name of an exception's class"),
        CallKey("audio_ms", int, "an audio chunk's length in milliseconds"),
    )
}
