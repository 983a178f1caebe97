"""Mina's lines for people: one readable screen line per event dict.

Shared by ``LOG_FORMAT=console`` (`mina.observability.formatters.ConsoleFormatter`, fed
the same redacted event dict the JSON formatter serialises) and ``mina logs`` (fed the
JSON lines back). Like structlog's ``ConsoleRenderer``, with Mina's order::

    info     2026-11-29 10:00:01.250 meeting.created  title=Standup  [mina.api] request_id=5f0c1a2b…

level, time, event, then the call's own keys, then the logger and the context keys in
schema order (dimmed; ``route`` only where it differs from ``path``). ``None`` values
are left out, long values are cut in the middle
(``…``), 32-hex ids are shortened to their first 8 digits (``mina logs --request-id``
takes such a prefix), and what does not fit the width continues on indented lines.
Rendered exceptions and stacks follow, multi-line, as the traceback reads.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from mina.observability.schema import CONTEXT_ORDER

__all__ = ["LEVEL_NUMBERS", "ConsoleRenderer"]

#: Level names, lowest first, as numbers to compare (``mina logs --level``).
LEVEL_NUMBERS: Final = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

_HEAD: Final = frozenset({"timestamp", "level", "logger", "event"})
_TRACES: Final = ("exception", "stack")
_CONTEXT: Final = frozenset(CONTEXT_ORDER)
_IDS: Final = frozenset({"request_id", "meeting_id", "trace_id", "span_id"})
_ID_SHOWN: Final = 8
_LEVEL_WIDTH: Final = 8  # "critical"
_EVENT_WIDTH: Final = 22  # pad so the keys of short events line up
_EVENT_MAX: Final = 120
_VALUE_MAX: Final = 60
_CONTEXT_MAX: Final = 40
_ELLIPSIS: Final = "…"

# A value shown without quotes: visible characters, none that would make it ambiguous.
_BARE: Final = re.compile(r"[^\s\"'=\\\x00-\x1f\x7f-\x9f]+")
_HEX_ID: Final = re.compile(r"[0-9a-f]{16,}")
_ISO: Final = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d{3})?\d*(Z|[+-]\d\d:\d\d)?")
# Control characters other than newline and tab: escaped so a log line cannot drive the
# terminal (colours, cursor moves) when a traceback is printed as is.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_RESET: Final = "\x1b[0m"
_DIM: Final = "\x1b[2m"
_BRIGHT: Final = "\x1b[1m"
_KEY: Final = "\x1b[36m"
_VALUE: Final = "\x1b[35m"
_LOGGER: Final = "\x1b[34m"
_LEVELS: Final = {
    "critical": "\x1b[31;1m",
    "error": "\x1b[31;1m",
    "warning": "\x1b[33;1m",
    "info": "\x1b[32m",
    "debug": "\x1b[34m",
}


def _elide(text: str, limit: int) -> str:
    # Cut the middle: both the start and the end of a path or message tell something.
    if len(text) <= limit:
        return text
    keep = limit - 1
    return text[: (keep + 1) // 2] + _ELLIPSIS + text[len(text) - keep // 2 :]


def _quoted(text: str) -> str:
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


# Keys repeat on every line: quote each once.
_quoted_key: Final = functools.lru_cache(maxsize=1024)(_quoted)


def _value(key: str, value: Any, limit: int) -> str:
    if isinstance(value, str):
        if key in _IDS and _HEX_ID.fullmatch(value):
            return value[:_ID_SHOWN] + _ELLIPSIS
        return _quoted(_elide(value, limit))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _elide(repr(value), limit)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (ValueError, TypeError, RecursionError):  # cycles, odd keys: say what it is
        text = repr(value)
    return _elide(_CONTROL.sub(_escape, text), limit)


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def _time(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    match = _ISO.fullmatch(text)
    if match is None:
        return _quoted(_elide(text, 32))
    return f"{match[1]} {match[2]}{match[3] or ''}"


class ConsoleRenderer:
    """Render an event dict as readable text: one line where it fits, then its traces.

    :param colors: ANSI colours (only for a terminal).
    :param width: wrap keys that do not fit this many columns onto indented lines;
        ``None`` or 0 keeps every line whole (values are still shortened).
    """

    __slots__ = ("_colors", "_width")

    def __init__(self, *, colors: bool = False, width: int | None = 120) -> None:
        self._colors = colors
        self._width = width or None

    def _paint(self, style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if self._colors else text

    def render(self, event: Mapping[str, Any], *, level: str | None = None) -> str:
        """Return *event* (a Mina event dict or parsed JSON line) as text, without newline.

        :param level: the level name when *event* has no ``level`` key (a record's).
        """
        level_name = str(event.get("level", level or "")).lower()
        if _CONTROL.search(level_name) or "\n" in level_name:  # data, not a terminal code
            level_name = _quoted(level_name)
        head = self._paint(_LEVELS.get(level_name, ""), level_name.ljust(_LEVEL_WIDTH)) + " "
        plain_head = level_name.ljust(_LEVEL_WIDTH) + " "
        if "timestamp" in event:
            time = _time(event["timestamp"])
            head += self._paint(_DIM, time) + " "
            plain_head += time + " "
        name = event.get("event")
        text = "" if name is None else name if isinstance(name, str) else repr(name)
        text = _elide(text, _EVENT_MAX)
        text = text if not _CONTROL.search(text) and "\n" not in text else _quoted(text)
        parts = self._parts(event)
        if parts:
            text = text.ljust(_EVENT_WIDTH)
        lines = self._wrap(head + self._paint(_BRIGHT, text), len(plain_head + text), parts)
        lines.extend(self._traces(event))
        return "\n".join(lines)

    def _pair(self, key: str, value: Any, limit: int, style: str | None) -> tuple[str, int]:
        shown_key = _quoted_key(key)
        shown = _value(key, value, limit)
        plain = f"{shown_key}={shown}"
        if not self._colors:
            return plain, len(plain)
        if style is not None:
            return self._paint(style, plain), len(plain)
        return f"{_KEY}{shown_key}{_RESET}={_VALUE}{shown}{_RESET}", len(plain)

    def _parts(self, event: Mapping[str, Any]) -> list[tuple[str, int]]:
        # (text as printed, visible width): colour codes take no column.
        parts = [
            self._pair(key, value, _VALUE_MAX, None)
            for key, value in event.items()
            if value is not None and key not in _HEAD and key not in _CONTEXT
            if key not in _TRACES or not isinstance(value, str)
        ]
        logger = event.get("logger")
        if logger is not None:
            shown = "[" + _elide(str(logger), _CONTEXT_MAX) + "]"
            shown = shown if not _CONTROL.search(shown) else _quoted(shown)
            parts.append((self._paint(_LOGGER if not parts else _DIM, shown), len(shown)))
        parts.extend(
            self._pair(key, event[key], _CONTEXT_MAX, _DIM)
            for key in CONTEXT_ORDER
            if event.get(key) is not None
            if key != "route" or event[key] != event.get("path")  # said once is enough
        )
        return parts

    def _wrap(self, first: str, used: int, parts: list[tuple[str, int]]) -> list[str]:
        # Continuation lines start under the event, or a third of the width in.
        indent = min(used - _EVENT_WIDTH, self._width // 3) if self._width else 0
        indent = max(indent, 4)
        lines = []
        line = first
        for text, width in parts:
            if self._width is not None and used + 1 + width > self._width and used > indent:
                lines.append(line.rstrip())
                line, used = " " * indent + text, indent + width
                continue
            line += " " + text
            used += 1 + width
        lines.append(line.rstrip())
        return lines

    def _traces(self, event: Mapping[str, Any]) -> list[str]:
        lines: list[str] = []
        for key in _TRACES:
            text = event.get(key)
            if isinstance(text, str) and text:
                lines.extend(_CONTROL.sub(_escape, text.rstrip("\n")).split("\n"))
        return lines
