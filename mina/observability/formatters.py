"""Stdlib formatters for the stdout stream: one JSON object per line, or a console view.

Both take the finished event dict a structlog call left on the record (see
`mina.observability.processors.RenderToLogKwargs`) and serialise it as is, so the JSON
work happens once. Records from other libraries go through
`mina.observability.processors.ForeignRecord` first and come out with the same schema,
context and redaction. The rendered exception is redacted here, because it only exists
as text once the formatter renders it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import shutil
import sys
import uuid
from collections.abc import Mapping
from typing import Any, Final

import orjson
from pythonjsonlogger.orjson import OrjsonFormatter

from mina.observability import linecap
from mina.observability.console import ConsoleRenderer
from mina.observability.pipeline import PIPELINE
from mina.observability.processors import ForeignRecord
from mina.observability.record import rendered
from mina.observability.schema import CONTEXT_ORDER, HEAD_KEYS
from mina.redaction import Redactor

__all__ = ["ConsoleFormatter", "JsonFormatter", "dumps", "json_default"]

_OPTIONS: Final = orjson.OPT_NON_STR_KEYS
_MAX_DEPTH: Final = 64
# Encoded by orjson itself (ISO 8601, canonical UUID): the slow path leaves them alone.
_NATIVE: Final = (dt.datetime, dt.date, dt.time, uuid.UUID)


def _placeholder(obj: object) -> str:
    try:
        return repr(obj)
    except Exception:
        return f"<unrepresentable {type(obj).__qualname__}>"


def json_default(obj: Any) -> Any:
    """Encode what orjson cannot: sets as lists, bytes as text, anything else as its repr.

    Never raises: an object whose ``__repr__`` raises becomes ``<unrepresentable Type>``.
    """
    if isinstance(obj, set | frozenset):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).decode("utf-8", "backslashreplace")
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {_str(obj)}"
    return _placeholder(obj)


def _str(obj: object) -> str:
    try:
        return str(obj)
    except Exception:
        return _placeholder(obj)


def _sanitize(obj: Any, depth: int, seen: set[int]) -> Any:
    # The slow path for what orjson refused: cycles, depth, huge ints, bad unicode, keys.
    if isinstance(obj, str):
        return obj.encode("utf-8", "backslashreplace").decode("utf-8")
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return obj if -(2**63) <= obj < 2**64 else str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, _NATIVE):
        return obj
    if depth > _MAX_DEPTH:
        return "<max depth>"
    if isinstance(obj, Mapping | list | tuple | set | frozenset):
        if id(obj) in seen:
            return "<cycle>"
        seen.add(id(obj))
        try:
            if isinstance(obj, Mapping):
                return {
                    _sanitize(_str(k), depth + 1, seen): _sanitize(v, depth + 1, seen)
                    for k, v in obj.items()
                }
            return [_sanitize(v, depth + 1, seen) for v in obj]
        finally:
            seen.discard(id(obj))
    return _sanitize(json_default(obj), depth + 1, seen)


# Valid in JSON strings, but line breaks to Python's splitlines and to JavaScript-based
# collectors: escaped so a line is a line for every reader.
_LINE_BREAKS: Final = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def dumps(data: Mapping[str, Any]) -> bytes:
    """Serialise *data* to one line of JSON; never raises, never splits the line."""
    try:
        out = orjson.dumps(data, default=json_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        out = orjson.dumps(_sanitize(data, 0, set()), option=_OPTIONS)
    if out.isascii():  # the common case: none of the three can be there
        return out
    for raw, escaped in _LINE_BREAKS:
        if raw in out:
            out = out.replace(raw, escaped)
    return out


class _EventFormatting:
    """What both formatters share: the event dict of a record, and its redacted traces.

    `mina.logging_config.configure_logging` hands each formatter the pipeline's foreign
    chain and redactor. One built without them (declared with ``class:`` in a custom
    YAML, or by hand) uses those of the configured pipeline at format time, so it never
    redacts less than the pipeline does.
    """

    _foreign: ForeignRecord | None
    _redactor: Redactor | None

    @property
    def foreign(self) -> ForeignRecord:
        """The chain for records that did not come through structlog."""
        return self._foreign or PIPELINE.parts()[0]

    @property
    def redactor(self) -> Redactor:
        """The redactor for rendered tracebacks."""
        return self._redactor or PIPELINE.parts()[1]

    def event_of(self, record: logging.LogRecord) -> Mapping[str, Any]:
        """Return the ordered, redacted event dict of *record*; shared, do not modify."""
        done = rendered(record)
        return done.line if done is not None else self.foreign(record)

    def traces_of(self, exception: str | None, stack: str | None) -> dict[str, str]:
        """Return the rendered ``exception`` and ``stack`` texts, redacted, when present."""
        traces = {}
        if exception:
            traces["exception"] = self.redactor.redact_text(exception)
        if stack:
            traces["stack"] = self.redactor.redact_text(stack)
        return traces


class JsonFormatter(_EventFormatting, OrjsonFormatter):
    """python-json-logger's orjson formatter, fed Mina's finished event dict.

    Keeps python-json-logger's options that make sense for a pre-built line:
    ``prefix``, ``static_fields`` (added when the line lacks them) and ``rename_fields``
    (to match a collector's schema).

    :param foreign: the chain for records that did not come through structlog
        (injected by `mina.logging_config.configure_logging`).
    :param redactor: redacts the rendered exception text.
    :param max_line_bytes: the longest line, newline included; a longer one is cut
        field by field (`mina.observability.linecap`).
    """

    def __init__(
        self,
        *args: Any,
        foreign: ForeignRecord | None = None,
        redactor: Redactor | None = None,
        max_line_bytes: int = 16 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._foreign = foreign
        self._redactor = redactor
        self._max_json = max_line_bytes - 1 - len(self.prefix.encode("utf-8"))
        self._protected = frozenset(self._get_rename(key) for key in (*HEAD_KEYS, *CONTEXT_ORDER))
        self._whole = frozenset(self._get_rename(key) for key in ("timestamp", "level", "logger"))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Fill *log_data* from the record's event dict instead of its attributes."""
        event = self.event_of(record)
        if self.rename_fields:
            log_data.update((self._get_rename(key), value) for key, value in event.items())
        else:
            log_data.update(event)
        for key, value in self.static_fields.items():
            log_data.setdefault(self._get_rename(key), value)
        traces = self.traces_of(message_dict.get("exc_info"), message_dict.get("stack_info"))
        for key, text in traces.items():
            log_data[self._get_rename(key)] = text

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Serialise with orjson; what it cannot encode becomes a readable placeholder."""
        return self.json_bytes(log_data).decode("utf-8")

    def json_bytes(self, log_data: dict[str, Any]) -> bytes:
        """`jsonify_log_record`, as the UTF-8 bytes it decodes (for writers of bytes)."""
        line = dumps(log_data)
        if len(line) > self._max_json:
            line = linecap.fit(log_data, line, self._max_json, self._protected, dumps, self._whole)
        return line


class ConsoleFormatter(_EventFormatting, logging.Formatter):
    """Human-readable lines (``LOG_FORMAT=console``) with the same fields and redaction.

    Rendered by `mina.observability.console.ConsoleRenderer`, as ``mina logs`` renders the
    JSON lines. *colors* and *width* default to what stdout is: colours on a terminal,
    its width (``COLUMNS``, else 120 columns).
    """

    def __init__(
        self,
        *args: Any,
        foreign: ForeignRecord | None = None,
        redactor: Redactor | None = None,
        colors: bool | None = None,
        width: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._foreign = foreign
        self._redactor = redactor
        if colors is None:  # sys.stdout is None when the process started with it closed
            colors = sys.stdout is not None and sys.stdout.isatty()
        if width is None:
            width = shutil.get_terminal_size((120, 24)).columns
        self._renderer = ConsoleRenderer(colors=colors, width=width)

    def format(self, record: logging.LogRecord) -> str:
        """Return *record* as a console line, followed by its exception if any."""
        exception = self.formatException(record.exc_info) if record.exc_info else record.exc_text
        stack = self.formatStack(record.stack_info) if record.stack_info else None
        event = {**self.event_of(record), **self.traces_of(exception, stack)}
        return self._renderer.render(event, level=record.levelname.lower())
