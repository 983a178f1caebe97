"""Request, user and meeting context: one call updates the log context and the Sentry scope.

Log lines get context from structlog's contextvars (merged by the pipeline's first
processor); Sentry events get it from their scope (tags, user, contexts). Binding through
this module keeps the two sides equal, so a log line and the Sentry event of the same
moment say the same request, user and meeting. Which Sentry field carries a key is the
registry's decision (`mina.observability.schema.CONTEXT`); keys it does not know become
tags (scalars) or the Sentry context ``mina`` (anything else).

Where a new piece of context belongs: its `mina.observability.schema.ContextKey`, then a
``bind_*`` function here if callers need one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import sentry_sdk
import structlog

from mina.observability.pipeline import PIPELINE
from mina.observability.schema import BOUND_KEYS as _bound_keys
from mina.observability.schema import SentryField, context_key

__all__ = [
    "bind",
    "bind_meeting",
    "bind_request",
    "bind_user",
    "bound",
    "clear",
    "tag_value",
]

_TAG_MAX: Final = 200  # Sentry truncates tag values at 200 characters
_meeting_fields: ContextVar[Mapping[str, Any] | None] = ContextVar("mina_meeting", default=None)


def tag_value(value: Any) -> str:
    """Return *value* as Sentry keeps a tag: text, cut to 200 characters."""
    text = value if isinstance(value, str) else str(value)
    return text[:_TAG_MAX]


def _consented(fields: Mapping[str, Any]) -> dict[str, Any]:
    # Personal data (email, client IP) is bound only with MINA_SEND_PII=1.
    if PIPELINE.send_pii:
        return dict(fields)
    return {key: value for key, value in fields.items() if not _is_pii(key)}


def _is_pii(key: str) -> bool:
    spec = context_key(key)
    return spec is not None and spec.pii


def _to_scope(scope: sentry_sdk.Scope, fields: Mapping[str, Any]) -> None:
    # Each key to the Sentry field the registry names; Sentry's own request and trace
    # fields are filled by its integrations.
    structured = {}
    user: dict[str, Any] = {}
    for key, value in fields.items():
        spec = context_key(key)
        if spec is None:
            if value is None or isinstance(value, str | int | float | bool):
                scope.set_tag(key, tag_value(value))
            else:
                structured[key] = value
        elif spec.sentry is SentryField.TAG:
            if value is not None:
                scope.set_tag(key, tag_value(value))
        elif spec.sentry is SentryField.USER and value is not None:
            user[spec.sentry_name or spec.name] = str(value)
    if structured:
        scope.set_context("mina", structured)
    if user:
        scope.set_user(user)


def bind_user(id: int | str, username: str | None = None, email: str | None = None) -> None:
    """Bind the authenticated user: ``user_id`` and ``username`` on log lines, Sentry user.

    *email* is kept only when ``MINA_SEND_PII=1``; otherwise it reaches neither output.
    The user replaces any user bound before in this context.
    """
    fields: dict[str, Any] = {"user_id": id, "username": username, "user_email": email}
    PIPELINE.ensure_configured()
    fields = _consented({key: value for key, value in fields.items() if value is not None})
    structlog.contextvars.bind_contextvars(**fields)
    _to_scope(sentry_sdk.get_isolation_scope(), fields)


def bind_request(**fields: Any) -> None:
    """Bind a request's context (``request_id``, ``method``, ``path``, ``route``, ...).

    Called by the Flask extension at the start of each request; keys are those of
    `mina.observability.schema.CONTEXT`, personal ones kept only with ``MINA_SEND_PII=1``.
    """
    PIPELINE.ensure_configured()
    fields = _consented(fields)
    structlog.contextvars.bind_contextvars(**fields)
    _to_scope(sentry_sdk.get_isolation_scope(), fields)


def bind_meeting(meeting_id: str, **fields: Any) -> None:
    """Bind the meeting being worked on.

    ``meeting_id`` goes on log lines and is a Sentry tag; the other *fields* (duration,
    participants, audio quality, ...) accumulate in the Sentry context ``meeting``.
    """
    PIPELINE.ensure_configured()
    previous = _meeting_fields.get() or {}
    # Fields accumulate for one meeting; another meeting starts afresh.
    kept = previous if previous.get("id") == meeting_id else {}
    merged = {**kept, "id": meeting_id, **fields}
    _meeting_fields.set(merged)
    structlog.contextvars.bind_contextvars(meeting_id=meeting_id)
    scope = sentry_sdk.get_isolation_scope()
    _to_scope(scope, {"meeting_id": meeting_id})
    scope.set_context("meeting", merged)


def bind(**fields: Any) -> None:
    """Bind any other context: on every following log line, and as Sentry tags.

    Scalars become tags (cut to Sentry's 200 characters); other values go to the Sentry
    context ``mina``.
    """
    PIPELINE.ensure_configured()
    fields = _consented(fields)
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
    PIPELINE.ensure_configured()
    fields = _consented(fields)
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
