"""The structlog processors of Mina's pipeline, each in one place.

`mina.logging_config` assembles them into the one chain; this module only defines them.
Where a new piece of context or a new step belongs: a processor here, added to
`mina.logging_config.build_processors`. Redaction lives in `mina.redaction`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Final

import sentry_sdk
from structlog.stdlib import render_to_log_kwargs
from structlog.typing import EventDict, WrappedLogger

from mina.observability.record import BREADCRUMB_ONLY, RECORD_ATTR, Rendered
from mina.observability.schema import BOUND_KEYS, CONTEXT_ORDER, HEAD_KEYS, SCOPED_KEYS

__all__ = [
    "RESERVED_RECORD_KEYS",
    "EventProcessor",
    "ForeignRecord",
    "RenameReservedKeys",
    "RenderToLogKwargs",
    "add_timestamp",
    "add_trace_ids",
    "ordered",
]

#: Names `logging.Logger.makeRecord` refuses in ``extra`` (it raises KeyError for them).
RESERVED_RECORD_KEYS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}

#: Keys Sentry gets through its own fields (scope, event timestamp/level/logger), so they
#: stay out of the event's ``extra`` and the breadcrumb's ``data``, which Sentry trims to
#: ten keys.
_HIDDEN_KEYS: Final = frozenset(HEAD_KEYS) | {"trace_id", "span_id"} | SCOPED_KEYS


def add_timestamp(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``timestamp``: now, ISO 8601 in UTC with microseconds, always the same width."""
    event_dict["timestamp"] = _iso(datetime.now(UTC))
    return event_dict


def add_trace_ids(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``trace_id`` and ``span_id`` of the Sentry trace this line belongs to.

    Only inside a transaction (a request, a background job, your own
    ``sentry_sdk.start_transaction``), sampled or not: the values of its active span,
    which Sentry puts into the ``trace`` context of the events of that moment, so a log
    line leads to its trace. Outside one (start-up, a worker exiting, the SDK's own
    warnings) nothing is added: the process-wide trace Sentry keeps there belongs to no
    unit of work. A ``trace_id``/``span_id`` the call or the context brought is kept as
    ``trace_id_``/``span_id_`` when it differs. Without an active Sentry client nothing
    is added either.
    """
    if not sentry_sdk.get_client().is_active():
        return event_dict
    span = sentry_sdk.get_current_scope().span
    if span is None:
        return event_dict
    for key, value in (("trace_id", span.trace_id), ("span_id", span.span_id)):
        own = event_dict.get(key, value)
        if own != value:
            event_dict[key + "_"] = own
        event_dict[key] = value
    return event_dict


class RenameReservedKeys:
    """Rename keys that collide with `logging.LogRecord` attributes or the line's head.

    ``log.info("x", name="Ada")`` would make `logging.Logger.makeRecord` raise KeyError,
    and ``level=``, ``logger=`` or ``timestamp=`` would be overwritten by the pipeline's
    own; the key becomes ``name_`` instead (``name__`` if that is taken too), so the call
    is logged and nothing is lost. Runs before the pipeline adds its head keys.
    """

    __slots__ = ("_reserved",)

    def __init__(
        self, reserved: Iterable[str] = RESERVED_RECORD_KEYS | {"level", "logger", "timestamp"}
    ) -> None:
        # exc_info and stack_info are log kwargs, not extras: render_to_log_kwargs pops them.
        self._reserved = frozenset(reserved) - {"exc_info", "stack_info"}

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        for key in self._reserved.intersection(event_dict):
            new = key + "_"
            while new in event_dict or new in self._reserved:
                new += "_"
            event_dict[new] = event_dict.pop(key)
        return event_dict


def ordered(event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Return *event_dict* as a new dict in schema order: head, context, then the rest."""
    out = {key: event_dict[key] for key in HEAD_KEYS if key in event_dict}
    for key in CONTEXT_ORDER:
        if key in event_dict:
            out[key] = event_dict[key]
    if len(out) != len(event_dict):
        for key, value in event_dict.items():
            if key not in out:
                out[key] = value
    return out


class RenderToLogKwargs:
    """The last processor: `structlog.stdlib.render_to_log_kwargs`, plus the finished line.

    The event name becomes the record's message (so Sentry groups by it), exc_info stays a
    real exception for Sentry, and the call's own keys become record extras (Sentry's
    ``extra`` and breadcrumb ``data``). The whole ordered line, context included, and the
    call's keys ride along as one `mina.observability.record.Rendered`: Mina's
    formatters serialise the line as is instead of walking the record again, Mina's
    breadcrumb handler takes the call's keys, and Sentry skips the private attribute, so
    request-wide context reaches Sentry only through its own fields (tags, user,
    contexts), set by `mina.observability.context`.
    """

    __slots__ = ()

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event = not event_dict.pop(BREADCRUMB_ONLY, False)
        line = ordered(event_dict)
        kwargs = render_to_log_kwargs(logger, method_name, event_dict)
        if len(kwargs) > 2:  # exc_info, stack_info or stacklevel: log kwargs, not line keys
            for key in kwargs.keys() - {"msg", "extra"}:
                line.pop(key, None)
        bound = BOUND_KEYS.get()
        call = {
            key: value
            for key, value in kwargs["extra"].items()
            if key not in _HIDDEN_KEYS and key not in bound
        }
        extra: dict[str, Any] = dict(call)
        extra[RECORD_ATTR] = Rendered(line, call, event)
        kwargs["extra"] = extra
        return kwargs


def _iso(moment: datetime) -> str:
    # A UTC datetime: "+00:00" cut for "Z"; timespec keeps the ".000000" isoformat() drops.
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


# Terminal escapes (ECMA-48 CSI and OSC sequences, two-character escapes): werkzeug
# colours its messages for a terminal; in a JSON value they are noise.
_ANSI: Final = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")

#: A processor that returns an event dict (not a rendered value): the foreign chain's kind.
EventProcessor = Callable[[WrappedLogger, str, EventDict], EventDict]


class ForeignRecord:
    """Turn a stdlib record that did not come through structlog into a Mina event dict.

    werkzeug, gunicorn, urllib3 or any ``logging.getLogger`` call: the record's formatted
    message becomes ``event`` (without terminal colour codes), its extras become keys,
    and then *processors* (context, trace ids, redaction: the same ones structlog calls
    run) are applied, so foreign lines have the same schema and the same guarantees as
    Mina's own.
    """

    __slots__ = ("_processors",)

    def __init__(self, processors: Iterable[EventProcessor]) -> None:
        self._processors = tuple(processors)

    def __call__(self, record: logging.LogRecord) -> dict[str, Any]:
        """Return the ordered event dict for *record*."""
        try:
            message: Any = record.getMessage()
        except Exception:  # bad %-args in someone else's call: keep what we can
            message = f"{record.msg!s} {record.args!r}"
        if isinstance(message, str) and "\x1b" in message:
            message = _ANSI.sub("", message)
        event_dict: EventDict = {
            "timestamp": _iso(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": message,
        }
        for key, value in record.__dict__.items():
            if key not in RESERVED_RECORD_KEYS and not key.startswith("_"):
                # extra={"level": ...} must not overwrite the record's own head keys.
                while key in event_dict:
                    key += "_"
                event_dict[key] = value
        for processor in self._processors:
            event_dict = processor(None, record.levelname.lower(), event_dict)
        return ordered(event_dict)
