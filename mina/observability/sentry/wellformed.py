"""Typed fields of Sentry events made to fit Relay's schema, so Relay keeps every value.

sentry-sdk copies some values as Python holds them, and Relay's normaliser rejects a value
of the wrong type (``invalid_data``; the value is dropped, the event marked):

- ``OSError("ENOENT", "no file")`` (any string as the first of two arguments, as some
  libraries raise) gives ``mechanism.meta.errno.number == "ENOENT"``; Relay wants a signed
  integer. The same holds for ``signal``, ``mach_exception`` and ``ns_error`` numbers
  and the mechanism's flags and ids.
- A logging level of its own (``logging.addLevelName(25, "NOTICE")``) or ``"warn"``
  gives ``level == "notice"``; Relay knows ``debug``, ``info``, ``warning``, ``error``,
  ``fatal`` (and ``critical``, ``log``).
- A context or user field of the wrong type: ``contexts.response.status_code == "500"``,
  ``contexts.os.version == 5``, ``user.ip_address == "unknown"`` (a Unix socket's peer);
  a tag or fingerprint part that is not a string.

`wellformed` fixes what can be read (``"2"`` is 2, ``"ENOENT"`` is ``errno.ENOENT``,
``"SIGTERM"`` is 15, ``"warn"`` is ``warning``) and drops what cannot, in place. The
checks cost a few dictionary look-ups per event.
"""

from __future__ import annotations

import errno
import ipaddress
import signal
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["LEVELS", "level", "wellformed"]

#: The levels Relay accepts for events and breadcrumbs.
LEVELS: Final = frozenset({"debug", "info", "warning", "error", "fatal", "critical", "log"})
_LEVEL_NAMES: Final = {
    "warn": "warning",
    "notice": "info",
    "trace": "debug",
    "verbose": "debug",
    "exception": "error",
    "err": "error",
    "crit": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
    "panic": "fatal",
}
_I64: Final = (-(2**63), 2**63 - 1)
_U64: Final = (0, 2**64 - 1)


def level(value: Any, default: str) -> Any:
    """Return *value* as a level Relay accepts (``"WARN"``: ``"warning"``), or *default*."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in LEVELS:
            return value if value == lowered else lowered
        return _LEVEL_NAMES.get(lowered, default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # Relay reads Python's logging numbers itself
    return default


def wellformed(event: dict[str, Any]) -> dict[str, Any]:
    """Fix, in place, *event*'s typed fields that Relay would reject; return *event*."""
    if "level" in event:
        event["level"] = level(event["level"], "error")
    for container in ("exception", "threads"):
        values = event.get(container)
        items = values.get("values") if isinstance(values, Mapping) else None
        for item in items if isinstance(items, list) else ():
            mechanism = item.get("mechanism") if isinstance(item, dict) else None
            if isinstance(mechanism, dict):
                _mechanism(mechanism)
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if isinstance(crumbs, Mapping) else crumbs
    for crumb in values if isinstance(values, list) else ():
        if isinstance(crumb, dict) and "level" in crumb:
            crumb["level"] = level(crumb["level"], "info")
    _contexts(event.get("contexts"))
    user = event.get("user")
    if isinstance(user, dict) and not _ip(user.get("ip_address")):
        user.pop("ip_address", None)
    tags = event.get("tags")
    if isinstance(tags, dict):
        for name, value in tags.items():
            if not isinstance(value, str | int | float | bool) and value is not None:
                tags[name] = str(value)
    fingerprint = event.get("fingerprint")
    if isinstance(fingerprint, list):
        event["fingerprint"] = [p if isinstance(p, str) else str(p) for p in fingerprint]
    return event


def _mechanism(mechanism: dict[str, Any]) -> None:
    for flag in ("handled", "synthetic", "is_exception_group"):
        _fix(mechanism, flag, _bool)
    for number in ("exception_id", "parent_id"):
        _fix(mechanism, number, _unsigned)
    meta = mechanism.get("meta")
    if not isinstance(meta, dict):
        return
    _typed(meta, "errno", "number", _errno, {"name": _str})
    _typed(meta, "signal", "number", _signal, {"code": _signed, "name": _str, "code_name": _str})
    _typed(
        meta,
        "mach_exception",
        "exception",
        _signed,
        {"code": _unsigned, "subcode": _unsigned, "name": _str},
    )
    _typed(meta, "ns_error", "code", _signed, {"domain": _str})


_Fix = Callable[[Any], Any]
_DROP: Final = object()


def _typed(meta: dict[str, Any], name: str, key: str, fix: _Fix, others: dict[str, _Fix]) -> None:
    # One typed object of mechanism.meta: without a readable *key* it is dropped whole
    # (the exception's message still says what it was: "[Errno ENOENT] no file").
    obj = meta.get(name)
    if obj is None:
        return
    if not isinstance(obj, dict) or (obj.get(key) is not None and fix(obj[key]) is _DROP):
        del meta[name]
        return
    _fix(obj, key, fix)
    for other, other_fix in others.items():
        _fix(obj, other, other_fix)


def _fix(obj: dict[str, Any], key: str, fix: _Fix) -> None:
    if key not in obj or obj[key] is None:
        return
    value = fix(obj[key])
    if value is _DROP:
        del obj[key]
    elif value is not obj[key]:
        obj[key] = value


def _signed(value: Any) -> Any:
    return _integer(value, _I64)


def _unsigned(value: Any) -> Any:
    return _integer(value, _U64)


def _integer(value: Any, bounds: tuple[int, int]) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            return _DROP
    if isinstance(value, int) and bounds[0] <= value <= bounds[1]:
        return value
    return _DROP


def _errno(value: Any) -> Any:
    if isinstance(value, str) and value.strip() in errno.__dict__:
        code = getattr(errno, value.strip())
        return code if isinstance(code, int) else _DROP
    return _signed(value)


def _signal(value: Any) -> Any:
    if isinstance(value, str) and value.strip().startswith("SIG"):
        try:
            return int(signal.Signals[value.strip()])
        except KeyError:
            return _DROP
    return _signed(value)


def _bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _DROP


def _str(value: Any) -> Any:
    return value if isinstance(value, str) else str(value)


# Context fields with a type (Relay's protocol): strings that may come as numbers, and
# numbers that may come as strings.
_CONTEXT_STRINGS: Final[dict[str, tuple[str, ...]]] = {
    "os": ("name", "version", "build", "kernel_version", "raw_description"),
    "runtime": ("name", "version", "build", "raw_description"),
    "browser": ("name", "version"),
    "app": ("app_version", "app_build", "app_name", "app_identifier", "build_type"),
}
_CONTEXT_NUMBERS: Final[dict[str, tuple[str, ...]]] = {"response": ("status_code", "body_size")}


def _contexts(contexts: Any) -> None:
    if not isinstance(contexts, dict):
        return
    for name, context in contexts.items():
        if not isinstance(context, dict):
            continue
        kind = str(context.get("type", name))
        for key in _CONTEXT_STRINGS.get(kind, ()):
            if isinstance(context.get(key), int | float) and not isinstance(context[key], bool):
                context[key] = str(context[key])
        for key in _CONTEXT_NUMBERS.get(kind, ()):
            _fix(context, key, _unsigned)


def _ip(value: Any) -> bool:
    if value is None or value == "{{auto}}":
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
