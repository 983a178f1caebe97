"""Request, user and meeting context: one call updates the log context and the Sentry scope.

Log lines get context from structlog's contextvars (merged by the pipeline's first
processor); Sentry events get it from their scope (tags, user, contexts). Binding through
this module keeps the two sides equal, so a log line and the Sentry event of the same
moment say the same request, user and meeting.

Where a new piece of context belongs: a ``bind_*`` function here, and its key in
`mina.observability.processors.CONTEXT_ORDER` if it should sit among the schema's context keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import sentry_sdk
import structlog

__all__ = [
    "SCOPED_KEYS",
    "bind",
    "bind_meeting",
    "bind_user",
    "bound",
    "bound_keys",
    "clear",
    "send_pii",
    "set_pii_policy",
]

#: Keys mirrored into Sentry's own fields. The pipeline keeps them out of Sentry's
#: ``extra`` and breadcrumb ``data`` (trimmed to ten keys) since the scope carries them;
#: `bound_keys` adds those `bind` was given in the current context.
SCOPED_KEYS: Final = frozenset(
    {
        "request_id",
        "method",
        "path",
        "route",
        "client_ip",
        "user_agent",
        "user_id",
        "username",
        "user_email",
        "meeting_id",
    }
)

_TAG_MAX: Final = 200  # Sentry truncates tag values at 200 characters
_meeting_fields: ContextVar[Mapping[str, Any] | None] = ContextVar("mina_meeting", default=None)
# Per context, not per process: a key bound in one request must not vanish from another
# request's Sentry extra.
_bound_keys: ContextVar[frozenset[str]] = ContextVar("mina_bound_keys", default=frozenset())
_send_pii = False


def set_pii_policy(send: bool) -> None:
    """Set whether user email and client IP may be bound (``MINA_SEND_PII``).

    Called by `mina.logging_config.configure_logging`; process-wide.
    """
    global _send_pii
    _send_pii = send


def send_pii() -> bool:
    """Return whether PII (email, client IP) may reach logs and Sentry."""
    return _send_pii


def _tag_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:_TAG_MAX]


def _to_scope(scope: sentry_sdk.Scope, fields: Mapping[str, Any]) -> None:
    structured = {}
    for key, value in fields.items():
        if value is None or isinstance(value, str | int | float | bool):
            scope.set_tag(key, _tag_value(value))
        else:
            structured[key] = value
    if structured:
        scope.set_context("mina", structured)


def bound_keys() -> frozenset[str]:
    """Return the keys `bind` and `bound` added in the current context."""
    return _bound_keys.get()


def bind_user(id: int | str, username: str | None = None, email: str | None = None) -> None:
    """Bind the authenticated user: ``user_id`` and ``username`` on log lines, Sentry user.

    *email* is kept only when ``MINA_SEND_PII=1``; otherwise it reaches neither output.
    """
    fields: dict[str, Any] = {"user_id": id}
    sentry_user: dict[str, Any] = {"id": str(id)}
    if username is not None:
        fields["username"] = username
        sentry_user["username"] = username
    if email is not None and _send_pii:
        fields["user_email"] = email
        sentry_user["email"] = email
    structlog.contextvars.bind_contextvars(**fields)
    sentry_sdk.set_user(sentry_user)


def bind_meeting(meeting_id: str, **fields: Any) -> None:
    """Bind the meeting being worked on.

    ``meeting_id`` goes on log lines and is a Sentry tag; the other *fields* (duration,
    participants, audio quality, ...) accumulate in the Sentry context ``meeting``.
    """
    previous = _meeting_fields.get() or {}
    # Fields accumulate for one meeting; another meeting starts afresh.
    kept = previous if previous.get("id") == meeting_id else {}
    merged = {**kept, "id": meeting_id, **fields}
    _meeting_fields.set(merged)
    structlog.contextvars.bind_contextvars(meeting_id=meeting_id)
    sentry_sdk.set_tag("meeting_id", _tag_value(meeting_id))
    sentry_sdk.set_context("meeting", merged)


def bind(**fields: Any) -> None:
    """Bind any other context: on every following log line, and as Sentry tags.

    Scalars become tags (cut to Sentry's 200 characters); other values go to the Sentry
    context ``mina``.
    """
    _bound_keys.set(_bound_keys.get() | fields.keys())
    structlog.contextvars.bind_contextvars(**fields)
    _to_scope(sentry_sdk.get_isolation_scope(), fields)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind *fields* for the duration of a ``with`` block or a decorated call.

    The previous values come back on exit, on the log side and the Sentry side alike::

        with mina.observability.context.bound(job="transcribe"):
            ...

        @mina.observability.context.bound(job="cleanup")
        def cleanup(): ...
    """
    token = _bound_keys.set(_bound_keys.get() | fields.keys())
    try:
        with structlog.contextvars.bound_contextvars(**fields), sentry_sdk.new_scope() as scope:
            _to_scope(scope, fields)
            yield
    finally:
        _bound_keys.reset(token)


def clear() -> None:
    """Forget all bound log context (the end of a request). Sentry scopes end by themselves."""
    structlog.contextvars.clear_contextvars()
    _meeting_fields.set(None)
    _bound_keys.set(frozenset())
