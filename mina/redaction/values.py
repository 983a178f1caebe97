"""Where the value of a ``name=value`` pair ends: quoted, bracketed, bare or the line's rest.

`mina.redaction.text` finds the names; this module says which characters are the value, so
that only the value is replaced and the text around it stays readable.
"""

from __future__ import annotations

import bisect
import re
from typing import Final

from mina.redaction.shapes import Span

__all__ = [
    "QUOTED",
    "REDACTED",
    "bare_kind",
    "inside",
    "line_end",
    "literals_of",
    "value_span",
    "whole_literal",
]

#: What every secret is replaced by, in values and inside text alike.
REDACTED: Final = "[REDACTED]"

QUOTED: Final = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'")
_BARE_VALUE: Final = re.compile(r"[^\s&#;\"'<>]+")
_JSON_VALUE: Final = re.compile(r"[^\s,}\]]+")
# A line's value ends at its line's end, also an escaped one: a repr's or JSON's \n (the
# headers in http.client's request bytes, the lines of a YAML blob in a frame local).
_LINE_VALUE: Final = re.compile(r"(?:(?i:bearer|basic)[ \t]+)?((?:[^\r\n\\]|\\(?![rn]))+)")
# After a hard-coded secret's closing quote in a source line: the value is the literal
# alone ("token": "abc"} or password="abc", x), not an expression built from it.
_CODE_VALUE_END: Final = re.compile(r"[ \t]*(?:[,)}\];#]|$)")
_CLOSERS: Final = {")": "(", "]": "[", "}": "{"}
_OPENERS: Final = frozenset("([{")


def value_span(text: str, pos: int, *, quoted_name: bool, sep: str) -> Span | None:
    """Return where the value of a sensitive ``name<sep>`` pair ending at *pos* is."""
    if text.startswith(REDACTED, pos):  # keeps re-redaction a no-op
        return None
    quote = text[pos : pos + 2] if text.startswith(('\\"', "\\'"), pos) else text[pos : pos + 1]
    if quote in ('"', "'", '\\"', "\\'"):  # quoted, also JSON inside JSON (\"...\")
        start = pos + len(quote)
        value = QUOTED.match(text, pos) if len(quote) == 1 else None
        if value is not None:
            return start, value.end() - 1
        end = text.find(quote, start)
        if end < 0:  # unterminated (cut) quote: everything up to the line's end
            end = line_end(text, start)
        return start, end
    if text[pos : pos + 1] in _OPENERS and (quoted_name or sep == "="):
        return pos, _bracket_end(text, pos)  # password=('a', 'b'), "token": ["a", "b"]
    if quoted_name:  # "pin": 1234
        value = _JSON_VALUE.match(text, pos)
        return None if value is None else value.span()
    if sep == "=":  # query strings, logfmt, --flag=value
        value = _BARE_VALUE.match(text, pos)
        if value is None:
            return None
        start, end = value.span()
        # "f(token=abc)": a closing bracket without its opening one is not the value's
        # (at most three: the count is linear, and deeper calls are rare).
        for _ in range(3):
            closer = text[end - 1]
            if closer not in _CLOSERS or text.count(_CLOSERS[closer], start, end) >= (
                text.count(closer, start, end)
            ):
                break
            end -= 1
        return start, end
    if ":" in sep:  # a header or "name: value" line: the rest of the line
        value = _LINE_VALUE.match(text, pos)
        return None if value is None else value.span(1)
    return None  # "password = request.json[...]" is code, not a secret


def _bracket_end(text: str, pos: int) -> int:
    """Return the end of the bracketed value opening at *pos*; its line's end if unclosed.

    Quoted strings inside are skipped whole, so ``('a)b',)`` ends after its last ``)``.
    """
    stop = line_end(text, pos)
    depth = 0
    i = pos
    while i < stop:
        ch = text[i]
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
            if not depth:
                return i + 1
        elif ch in "'\"":
            quoted = QUOTED.match(text, i)
            if quoted is None:
                break
            i = quoted.end()
            continue
        i += 1
    return stop


def bare_kind(text: str, pair: re.Match[str]) -> str:
    """Return the kind of a pair whose value may hold later pairs: ``(`` for a bracketed
    value, ``=`` or ``:`` for an unquoted pair whose value is unquoted, else ``""``.

    A later pair of the same kind inside such a value has its value inside it too.
    """
    pos = pair.end()
    sep = pair.group(3)
    if text[pos : pos + 1] in _OPENERS and (pair.group(1) or sep == "="):
        return "("
    if pair.group(1) or text[pos : pos + 1] in ("'", '"', "\\"):
        return ""
    return "=" if sep == "=" else ":" if ":" in sep else ""


def line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def literals_of(line: str) -> list[Span]:
    """The string literals of a source line, in order (an unclosed one ends the line)."""
    return [m.span() for m in QUOTED.finditer(line)] if "'" in line or '"' in line else []


def inside(literals: list[Span], pos: int) -> bool:
    """Whether *pos* is strictly inside one of *literals* (not at its opening quote)."""
    i = bisect.bisect_right([a for a, _ in literals], pos) - 1
    return i >= 0 and literals[i][0] < pos < literals[i][1]


def whole_literal(line: str, pos: int) -> bool:
    """Whether the string literal closing before *pos* is a whole value in *line*."""
    return _CODE_VALUE_END.match(line, pos) is not None
