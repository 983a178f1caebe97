"""Encoded text: find a secret whatever encoding hides it, redact it where it stands.

A secret must not pass because it is encoded: ``next=%2Fcb%3Fpassword%3Dhunter2`` (a
query inside a query), ``%253D`` (encoded twice), ``q=ada%40example.org``, a repr's
``'a\\tghp_...'`` or ``'\\n  password: hunter2\\n'``, ``\\u0070assword=...`` in JSON,
``data:text/plain;base64,cGFzc3dvcmQ9...``. `encoded_spans` undoes the encodings in layers
and runs the text rules on each decoded view; every secret found there is mapped back to
the characters that encode it, so only those are replaced and the rest stays as it was
(``next=%2Fcb%3Fpassword%3D[REDACTED]%26page%3D2``).

What is decoded, at most `LAYERS` times over (each layer undoes the escapes the one
before produced):

- percent escapes of ASCII bytes (``%3D``, ``%2540`` twice), and ``+`` as a space when
  the text has percent escapes or an ``=``;
- JSON and Python escapes: ``\\t \\n \\r \\" \\' \\\\ \\/ \\b \\f``, ``\\xNN``,
  ``\\uNNNN``, ``\\UNNNNNNNN``;
- base64 after ``;base64,`` (data URLs) and after ``Basic`` (HTTP credentials): the
  decoded text is scanned, and a secret in it takes the base64 characters that encode it
  (whole groups of four). A ``Basic`` credential that decodes to ``user:password`` is a
  credential whatever its length.

Each escape becomes one character, so a decoded view maps back to the text exactly. Bytes
above ASCII stay escaped (no secret format needs them). The original text is scanned as
well, by the caller: a view only adds what it finds.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Callable
from typing import Final

from mina.redaction.shapes import Span

__all__ = ["LAYERS", "encoded_spans", "may_be_encoded"]

#: Decoding passes at most: three undoes a value percent-encoded three times over.
LAYERS: Final = 3
# Base64 payloads longer than this (about 48 KiB of data) are not decoded: an image.
_BASE64_MAX: Final = 64 * 1024

_PERCENT: Final = re.compile(r"%[0-7][0-9A-Fa-f]")
_ESCAPE: Final = re.compile(
    r"%([0-7][0-9A-Fa-f])"
    r"|\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U(00(?:0[0-9A-Fa-f]|10)[0-9A-Fa-f]{4})"
    r"|([\\\"'/bfnrt]))"
)
_ESCAPE_PLUS: Final = re.compile(f"{_ESCAPE.pattern}|(\\+)")
_SIMPLE_GROUP: Final = 5
_PLUS_GROUP: Final = 6
_SIMPLE: Final = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f"}
# The escapes of ASCII characters, decoded in advance: a text full of escapes costs one
# look-up per escape.
_COMMON: Final = {
    **{f"%{c:02X}": chr(c) for c in range(128)},
    **{f"%{c:02x}": chr(c) for c in range(128)},
    **{f"\\x{c:02x}": chr(c) for c in range(128)},
    **{f"\\u{c:04x}": chr(c) for c in range(128)},
    **{f"\\{k}": v for k, v in _SIMPLE.items()},
    **{f"\\{c}": c for c in "\\\"'/"},
    "+": " ",
}
_BASE64: Final = re.compile(
    r"(?:;base64,|(?<![A-Za-z])(?i:basic)[ \t]+)([A-Za-z0-9+/_\-]{4,}={0,2})(?![A-Za-z0-9+/=])"
)
_URLSAFE: Final = str.maketrans("-_", "+/")
_PRINTABLE: Final = re.compile(r"[\t\n\r\x20-\x7e\u00a0-\uffff]*")

#: Finds the secrets in a text (the text rules without decoding).
Find = Callable[[str], list[Span]]


def may_be_encoded(text: str) -> bool:
    """Whether *text* has something `encoded_spans` would decode (a cheap test)."""
    return (
        "%" in text
        or "\\" in text
        or ("+" in text and "=" in text)
        or "base64," in text
        or "asic" in text  # Basic, basic, BASIC
        or "ASIC" in text
    )


def encoded_spans(text: str, find: Find, add: Callable[[Span], object]) -> None:
    """Call *add* with the span, in *text*, of each secret *find* finds in a decoded view.

    Nothing is added for what *find* finds in *text* itself: the caller scans it.
    """
    view = text
    maps: list[_Map] = []
    for layer in range(LAYERS + 1):
        if layer:
            decoded = _decode(view)
            if decoded is None:
                return
            view, step = decoded
            maps.append(step)
            for start, end in find(view):
                add(_back(maps, start, end))
        if "base64," in view or "asic" in view.lower():
            for start, end in _base64_spans(view, find):
                add(_back(maps, start, end))
        if not _has_escape(view):
            return


def _has_escape(text: str) -> bool:
    return "\\" in text or "+" in text or _PERCENT.search(text) is not None


class _Map:
    """Where each character of a decoded view came from in the text it was decoded from.

    Built only when a secret is found in the view (most views hold none).
    """

    __slots__ = ("_ends", "_pattern", "_positions", "_text")

    def __init__(self, text: str, pattern: re.Pattern[str]) -> None:
        self._text = text
        self._pattern = pattern
        self._positions: list[int] | None = None  # in the view: each escape's character
        self._ends: list[int] = []  # in the text: where that escape ends

    def back(self, pos: int) -> int:
        """Return where the view's offset *pos* is in the text."""
        if self._positions is None:
            self._positions = []
            shift = 0
            for m in self._pattern.finditer(self._text):
                start, end = m.span()
                self._positions.append(start - shift)
                self._ends.append(end)
                shift += end - start - 1
        # Escapes before *pos* each took (end - start) characters for one: shift by them.
        i = bisect.bisect_left(self._positions, pos)
        if not i:
            return pos
        return self._ends[i - 1] + pos - self._positions[i - 1] - 1


def _back(maps: list[_Map], start: int, end: int) -> Span:
    for step in reversed(maps):
        start, end = step.back(start), step.back(end)
    return start, end


def _decode(text: str) -> tuple[str, _Map] | None:
    """Return *text* with one layer of escapes undone and its map; None if it has none."""
    plus = "+" in text and ("=" in text or _PERCENT.search(text) is not None)
    pattern = _ESCAPE_PLUS if plus else _ESCAPE
    view, count = pattern.subn(_char, text)
    return (view, _Map(text, pattern)) if count else None


def _char(m: re.Match[str]) -> str:
    # Every match is one character: the pattern takes no escape beyond U+10FFFF.
    common = _COMMON.get(m[0])
    if common is not None:
        return common
    group = m.lastindex
    if group == _PLUS_GROUP:
        return " "
    if group == _SIMPLE_GROUP:
        simple = m.group(group)
        return _SIMPLE.get(simple, simple)
    return chr(int(m.group(group or 0), 16))  # %NN, \xNN, \uNNNN, \UNNNNNNNN


def _base64_spans(text: str, find: Find) -> list[Span]:
    # Base64 after ";base64," or "Basic": a secret in the decoded text takes the groups of
    # four characters that encode its bytes.
    spans: list[Span] = []
    for m in _BASE64.finditer(text):
        payload = m.group(1)
        if len(payload) > _BASE64_MAX:
            continue
        plain = _b64decode(payload)
        if plain is None:
            continue
        start = m.start(1)
        if not m.group().startswith(";") and ":" in plain:
            spans.append(m.span(1))  # Basic user:password
            continue
        for a, b in find(plain):
            first = len(plain[:a].encode()) // 3 * 4
            last = -(-len(plain[:b].encode()) // 3) * 4
            spans.append((start + first, start + min(last, len(payload))))
    return spans


def _b64decode(payload: str) -> str | None:
    # Text only: a binary payload (an image) holds no secret the text rules could find.
    data = payload.rstrip("=").translate(_URLSAFE)
    try:
        plain = base64.b64decode(data + "=" * (-len(data) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return plain if plain and _PRINTABLE.fullmatch(plain) else None
