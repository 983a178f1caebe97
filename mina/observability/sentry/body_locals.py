"""Frame locals that hold the request's body are the body: without PII they are not sent.

Without ``MINA_SEND_PII=1`` Sentry's integrations leave request bodies out of events
(`mina.observability.sentry.options`), but a view that did ``data = request.get_json()``
and then failed has the same body in its frame's ``vars``, and so has
``name = data["name"]``. `body_locals` finds them: it walks the exception's traceback (and
its causes), finds the request being handled (a werkzeug ``Request`` in a frame, or a
``RequestContext``'s), collects what its body parsed into (``get_json()``, ``form``,
``files``, ``get_data()``, and every string and container inside them) and names each local
that *is* one of those objects. `drop_body_locals` replaces them in the event with
`mina.redaction.REDACTED`. Identity, not equality: a local that merely equals a body value
(``"en"``) is not the body.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from types import FrameType, TracebackType
from typing import Any, Final

from werkzeug.wrappers import Request

from mina.redaction import REDACTED

__all__ = ["body_locals", "drop_body_locals"]

#: Where a local is: the frame's file (Sentry's ``abs_path``), line and the local's name.
Local = tuple[str, int, str]

# Bounds: a traceback's frames, chained exceptions, and the objects of a body walked.
_FRAMES_MAX: Final = 200
_CHAIN_MAX: Final = 8
_NODES_MAX: Final = 10_000
_DEPTH_MAX: Final = 16
# Cached on the request by werkzeug once the body is read: the body in its parsed forms.
_BODY_ATTRS: Final = ("_cached_json", "form", "files", "_cached_data")


def body_locals(hint: Any) -> frozenset[Local]:
    """Return the frame locals of *hint*'s exception that hold (part of) a request body."""
    exc_info = hint.get("exc_info") if isinstance(hint, Mapping) else None
    exc = exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) == 3 else None
    if not isinstance(exc, BaseException):
        return frozenset()
    frames = list(_frames(exc))
    body: set[int] = set()
    for request in _requests(frames):
        _collect(request, body)
    if not body:
        return frozenset()
    found = set()
    for frame, lineno in frames:
        for name, value in _locals(frame).items():
            if id(value) in body:
                found.add((os.path.abspath(frame.f_code.co_filename), lineno, name))
    return frozenset(found)


def drop_body_locals(event: dict[str, Any], found: frozenset[Local]) -> None:
    """Replace, in *event*'s frames, the locals named in *found* by the marker."""
    if not found:
        return
    for container in ("exception", "threads"):
        values = event.get(container)
        items = values.get("values") if isinstance(values, Mapping) else None
        for item in items if isinstance(items, list) else ():
            stacktrace = item.get("stacktrace") if isinstance(item, Mapping) else None
            frames = stacktrace.get("frames") if isinstance(stacktrace, Mapping) else None
            for frame in frames if isinstance(frames, list) else ():
                _drop(frame, found)


def _drop(frame: Any, found: frozenset[Local]) -> None:
    variables = frame.get("vars") if isinstance(frame, dict) else None
    if not isinstance(variables, dict):
        return
    where = (frame.get("abs_path"), frame.get("lineno"))
    hidden = {name for path, line, name in found if (path, line) == where}
    if hidden.intersection(variables):
        frame["vars"] = {k: REDACTED if k in hidden else v for k, v in variables.items()}


def _frames(exc: BaseException) -> Iterator[tuple[FrameType, int]]:
    seen: set[int] = set()
    count = 0
    current: BaseException | None = exc
    for _ in range(_CHAIN_MAX):
        if current is None or id(current) in seen:
            return
        seen.add(id(current))
        tb: TracebackType | None = current.__traceback__
        while tb is not None and count < _FRAMES_MAX:
            yield tb.tb_frame, tb.tb_lineno
            count += 1
            tb = tb.tb_next
        current = current.__cause__ or current.__context__


def _locals(frame: FrameType) -> dict[str, Any]:
    try:
        return dict(frame.f_locals)
    except Exception:  # a frame whose locals cannot be read has none to hide
        return {}


def _requests(frames: list[tuple[FrameType, int]]) -> Iterator[Request]:
    seen: set[int] = set()
    for frame, _ in frames:
        for value in _locals(frame).values():
            request = getattr(value, "request", None) if not isinstance(value, Request) else value
            if isinstance(request, Request) and id(request) not in seen:
                seen.add(id(request))
                yield request


def _collect(request: Request, body: set[int]) -> None:
    cached = vars(request)
    roots: list[Any] = []
    for attr in _BODY_ATTRS:
        value = cached.get(attr)
        if attr == "_cached_json" and isinstance(value, tuple):
            roots.extend(v for v in value if v is not Ellipsis)
        elif value is not None:
            roots.append(value)
    stack = [(root, 0) for root in roots]
    while stack and len(body) < _NODES_MAX:
        value, depth = stack.pop()
        if isinstance(value, str | bytes):
            if len(value) >= 2:  # one-character strings are shared by everything
                body.add(id(value))
            continue
        if not isinstance(value, Mapping | list | tuple) or depth >= _DEPTH_MAX:
            continue
        if id(value) in body:
            continue
        body.add(id(value))
        # A MultiDict keeps each key's values in a list: dict.values shows them all.
        items = (
            dict.values(value)
            if isinstance(value, dict)
            else (value.values() if isinstance(value, Mapping) else value)
        )
        stack.extend((item, depth + 1) for item in items)
