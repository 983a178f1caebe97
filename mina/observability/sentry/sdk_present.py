"""The presenter: parts of an event handed to the SDK's ``serialize`` already serialised.

`present_serialized`, an event processor run last, turns the breadcrumbs Mina's
``before_breadcrumb`` finished (`log_crumb`) and the per-process ``modules`` and ``sdk``
into `_Presented` values, which ``serialize`` returns as they are. It relies on
``Scope._event_processors``, ``serializer.global_repr_processors``,
``client.SDK_INFO`` and ``__sentry_repr__`` being taken as is by ``serialize()``; pinned
by `tests/observability/test_sdk_pins.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import sentry_sdk
from sentry_sdk import client as sentry_client
from sentry_sdk import serializer
from sentry_sdk.utils import format_timestamp

from mina.observability.sentry.sdk import DEFERRED_HINT
from mina.observability.sentry.sdk_serialize import fits


def present_serialized(event: Any, hint: Any, client: Any = None) -> Any:
    """Hand `serialize` what is already serialised: an event processor, run last.

    `sentry_sdk.serializer.serialize` walks each event after the event processors.
    Breadcrumbs finished by Mina's ``before_breadcrumb`` (marked, see `log_crumb`; each
    serialised here in one flat pass, `_wire`) and the per-process ``modules`` are handed
    to it as `_Presented` values, which it takes without walking them. An event to be
    finished on the event worker is left as it is here (see `DEFERRED_HINT`); the worker
    calls this with its *client*.
    """
    if not isinstance(event, dict) or (isinstance(hint, dict) and hint.get(DEFERRED_HINT)):
        return event
    if client is None:
        client = sentry_sdk.get_client()
    limit = client.options.get("max_value_length")
    crumbs = event.get("breadcrumbs")
    if type(crumbs) is dict and len(crumbs) == 1:
        values = crumbs.get("values")
        if type(values) is list and values:
            wires = [_wire(crumb, limit) if type(crumb) is dict else None for crumb in values]
            if None not in wires:
                presented = RedactedCrumbs(values=wires)
                event["breadcrumbs"] = _Presented(crumbs, presented)
    modules = event.get("modules")
    if type(modules) is dict:
        wire = _constant("modules", modules, limit)
        if wire is not None:
            event["modules"] = _Presented(modules, wire)
    if event.get("sdk") is None and event.get("type") != "transaction":
        # What the SDK's _prepare_event would add next, already serialised.
        info = _sdk_info(client)
        wire = _constant("sdk", info, limit)
        if wire is not None:
            event["sdk"] = _Presented(info, wire)
    return event


class RedactedCrumbs(dict[str, Any]):
    """Presented breadcrumbs after serialisation: every one redacted by ``before_breadcrumb``
    and serialised already, without the mark it adds, so ``before_send`` keeps them whole."""

    __slots__ = ()


def _sdk_info(client: Any) -> dict[str, Any]:
    # As Client._prepare_event builds it.
    info = dict(sentry_client.SDK_INFO)
    info["integrations"] = sorted(client.integrations.keys())
    return info


def install_presenter() -> None:
    """Run `present_serialized` for every event, after every other global processor.

    Processors of the global scope run after those of ``add_global_event_processor``
    (the SDK's own, such as the one adding ``modules``), whenever either was added.
    """
    scope = sentry_sdk.get_global_scope()
    if present_serialized not in scope._event_processors:
        scope.add_event_processor(present_serialized)


class _Presented(dict[str, Any]):
    """A value with its serialised form: `serialize` returns ``wire`` instead of walking it.

    It is still the original mapping for anything that reads the event before
    serialisation (the SDK counts a truncated buffer's breadcrumbs from it).
    """

    __slots__ = ("wire",)

    def __init__(self, value: dict[str, Any], wire: Any) -> None:
        super().__init__(value)
        self.wire = wire

    def __sentry_repr__(self) -> Any:
        # serialize() returns what a type's __sentry_repr__ gives, as it is.
        return self.wire


#: Set by Mina's ``before_breadcrumb`` on what it returns: "redacted already". Sentry
#: serialises an event (copying every dict) before ``before_send`` sees it, so only a key
#: survives that far; ``before_send`` removes it.
REDACTED_MARK: Final = "_mina_redacted"
_WIRE_SCALARS: Final = frozenset({str, int, bool, type(None)})
_cache: dict[str, tuple[dict[str, Any], Any, int | None]] = {}


def _wire(crumb: dict[str, Any], max_value_length: int | None) -> dict[str, Any] | None:
    # serialize()'s result for a breadcrumb of strings, numbers and a flat data dict,
    # without its walk: with no repr processors, such values come out as they are when
    # no string is over the limit, the timestamp formatted, a dict of at most 10 keys
    # untrimmed.
    if serializer.global_repr_processors:
        return None
    wire: dict[str, Any] = {}
    if crumb.get(REDACTED_MARK) is not True:
        return None  # not finished by before_breadcrumb: before_send must redact it
    for key, value in crumb.items():
        if key == REDACTED_MARK:
            continue
        if type(key) is not str:
            return None
        if _plain_values((value,), max_value_length):
            wire[key] = value
        elif key == "timestamp" and type(value) is datetime:
            if value.tzinfo is UTC and value.year >= 1000:  # as strftime would, faster
                wire[key] = value.isoformat(timespec="microseconds")[:-6] + "Z"
            else:
                wire[key] = format_timestamp(value)
        elif key == "data" and type(value) is dict:
            if not (
                len(value) <= serializer.MAX_DATABAG_BREADTH
                and all(type(name) is str for name in value)
                and _plain_values(value.values(), max_value_length)
            ):
                return None
            wire[key] = value  # serialize() would make an equal copy; nothing changes it
        else:
            return None
    return wire


def log_crumb(
    level: str, category: str, message: str, moment: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """The breadcrumb ``before_breadcrumb`` returns for a structlog call: what Sentry's
    breadcrumb handler makes of its record, marked redacted. *moment* is its UTC time."""
    return {
        "type": "log",
        "level": level,
        "category": category,
        "message": message,
        "timestamp": moment,
        "data": data,
        REDACTED_MARK: True,
    }


def _plain_values(values: Iterable[Any], limit: int | None) -> bool:
    # Whether `serialize` returns each of *values* as it is under *limit*: strings that
    # fit, finite floats, ints, bools and None.
    for item in values:
        kind = type(item)
        if kind is str:
            if limit is not None and len(item) * 4 > limit and not fits(item, limit):
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind not in _WIRE_SCALARS:
            return False
    return True


def _constant(key: str, value: dict[str, Any], limit: int | None) -> Any:
    # modules and sdk are the same for every event of a process: serialised once, and
    # again only when they change (and never presented if serialising annotated them).
    cached = _cache.get(key)
    if cached is not None and cached[2] == limit and (cached[0] is value or cached[0] == value):
        return cached[1]
    out = serializer.serialize({key: value}, max_value_length=limit)
    wire = None if "_meta" in out else out[key]
    _cache[key] = (value, wire, limit)
    return wire
