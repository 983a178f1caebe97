"""The serializer: events serialised without the SDK's walk when they are plain.

`serialize_event` replaces the name ``serialize`` in ``sentry_sdk.client``
(`install_serializer`) and follows ``serializer.MAX_DATABAG_DEPTH``/
``MAX_DATABAG_BREADTH`` and the databag paths; pinned by
`tests/observability/sentry/test_sdk_serialize.py`.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

from sentry_sdk import client as sentry_client
from sentry_sdk import serializer
from sentry_sdk import utils as sentry_utils
from sentry_sdk._types import AnnotatedValue
from sentry_sdk.utils import format_timestamp


def fits(text: str, limit: int | None) -> bool:
    """Whether sentry_sdk.utils.strip_string leaves *text* as it is under *limit*."""
    if limit is None or len(text) * 4 <= limit:  # UTF-8 takes at most 4 bytes a character
        return True
    try:
        return len(text.encode("utf-8")) <= limit
    except UnicodeError:
        return len(text) <= limit


class _NotPlain(Exception):
    """Raised inside `serialize_plain` where only the SDK's walk knows the answer."""


_NOT_PLAIN: Final = _NotPlain()
_SCALAR_TYPES: Final = frozenset({type(None), bool, int})


def serialize_plain(event: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
    """Return what ``sentry_sdk.serializer.serialize(event, **kwargs)`` returns, or None
    when *event* holds anything its walk would change beyond copying.

    `serialize` spends about 7 µs a node on this machine; an error event with its
    contexts, tags and extra is some 40 nodes, the costliest step left on the thread that
    logged the error. Almost every event Mina builds is plain: dicts with ``str`` keys,
    lists, tuples, strings within ``max_value_length``, finite numbers, UTC-convertible
    datetimes and values already presented (`_Presented`). For those, serialising is
    copying each container, formatting datetimes and presenting what is presented; this
    does that, within the SDK's databag rules (``extra`` and each breadcrumb at most
    ``MAX_DATABAG_DEPTH`` deep and ``MAX_DATABAG_BREADTH`` wide). Anything else (a trim,
    a repr, a cycle, a request body, spans, repr processors) returns None so the SDK's
    walk runs. ``tests/observability/sentry/test_sdk_serialize.py`` holds the two equal for
    generated events.
    """
    if serializer.global_repr_processors or "is_vars" in kwargs or type(event) is not dict:
        return None
    limit = kwargs.get("max_value_length")
    meta: dict[str, Any] = {}
    out: dict[str, Any] = {}
    seen = {id(event)}  # the containers above the node being copied: a cycle is not plain
    try:
        for key, value in event.items():
            if type(key) is not str or key in _FALLBACK_TOP:
                return None
            if type(value) is AnnotatedValue:  # as the SDK annotates a top key
                metadata = value.metadata
                if (
                    type(metadata) is not dict
                    or key == "request"
                    or any(type(name) is not str for name in metadata)
                ):
                    return None
                meta[key] = {"": dict(value.metadata)}
                value = value.value
            if key == "extra":
                out[key] = _node(value, limit, 0, seen)
            elif key == "breadcrumbs" and type(value) is dict:
                out[key] = _plain_crumbs(value, limit, seen)
            elif key == "request" and type(value) is dict and "data" in value:
                return None  # a request body: the SDK's body-size rules
            else:
                out[key] = _node(value, limit, None, seen)
    except _NotPlain:
        return None
    if meta:
        out["_meta"] = meta
    return out


#: Top-level keys the fast walk leaves to the SDK: span descriptions and attributes have
#: their own rules, and an event that already has ``_meta`` would have it replaced.
_FALLBACK_TOP: Final = frozenset({"spans", "_meta"})


def _plain_crumbs(crumbs: dict[str, Any], limit: int | None, seen: set[int]) -> dict[str, Any]:
    # ``breadcrumbs``: each item of ``values`` is a databag of its own.
    if id(crumbs) in seen:
        raise _NOT_PLAIN
    seen.add(id(crumbs))
    made: dict[str, Any] = {}
    for name, items in crumbs.items():
        if type(name) is not str:
            raise _NOT_PLAIN
        if name != "values":
            made[name] = _node(items, limit, None, seen)
        elif (type(items) is list or type(items) is tuple) and id(items) not in seen:
            seen.add(id(items))
            made[name] = [_node(crumb, limit, 0, seen) for crumb in items]
            seen.discard(id(items))
        else:
            raise _NOT_PLAIN
    seen.discard(id(crumbs))
    return made


def _node(value: Any, limit: int | None, depth: int | None, seen: set[int]) -> Any:
    # One node as `serialize` makes it; *depth* counts levels inside a databag (None:
    # outside one, no trimming). *seen* holds the ids of the containers above (cycles).
    if depth is not None and depth >= serializer.MAX_DATABAG_DEPTH:
        raise _NOT_PLAIN
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return value
    if kind is float:
        if math.isinf(value) or math.isnan(value):
            raise _NOT_PLAIN
        return value
    if kind is str:
        if fits(value, limit):
            return value
        raise _NOT_PLAIN
    presented = getattr(kind, "__sentry_repr__", None)
    if callable(presented):
        return presented(value)
    if kind is datetime:
        return format_timestamp(value)
    if kind is dict or kind is list or kind is tuple:
        if (depth is not None and len(value) > serializer.MAX_DATABAG_BREADTH) or id(value) in seen:
            raise _NOT_PLAIN
        seen.add(id(value))
        below = None if depth is None else depth + 1
        if kind is dict:
            made: Any = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise _NOT_PLAIN
                made[key] = _node(item, limit, below, seen)
        else:
            made = [_node(item, limit, below, seen) for item in value]
        seen.discard(id(value))
        return made
    raise _NOT_PLAIN


def serialize_event(event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """`serialize_plain`, else the SDK's own ``serialize``: what the client calls."""
    sentry_utils.disable_capture_event.set(True)  # as serialize() sets it, and unsets it
    try:
        made = serialize_plain(event, **kwargs)
    finally:
        sentry_utils.disable_capture_event.set(False)
    return made if made is not None else _SDK_SERIALIZE(event, **kwargs)


_SDK_SERIALIZE: Final = serializer.serialize


def install_serializer() -> None:
    """Make the SDK's client serialise events with `serialize_event`.

    ``Client._prepare_event`` calls the name ``serialize`` that ``sentry_sdk.client``
    imported; that name is replaced (once, for every client).
    """
    sentry_client.serialize = serialize_event  # type: ignore[attr-defined]
