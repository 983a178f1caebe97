"""Keeping a JSON line under a size cap by cutting its largest fields, never its head.

Collectors split long lines: Docker's json-file driver at 16 KiB, after which a
collector sees two halves that are not JSON. `fit` cuts a line that is too long field
by field instead, so it stays one JSON object:

1. the call's own keys, largest first: a long string keeps its start and its end (the
   middle gives way to ``…[N bytes cut]…``), anything else is removed;
2. if that is not enough, the strings of the protected keys (the head and the request
   context), largest first, are shortened the same way; they are never removed;
3. ``_truncated`` says what was cut: each key with its value's original size in bytes
   (encoded as JSON), the largest first.

Only a line over the cap pays for any of this; the caller compares one length.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

__all__ = ["MARKER", "fit"]

#: The key saying what was cut, added last.
MARKER: Final = "_truncated"
_LISTED: Final = 16  # cut keys named in the marker; the rest are counted under "(more)"
_NAME_MAX: Final = 64  # a cut key's name in the marker is cut to this many characters
_KEEP_MIN: Final = 64  # below this, a value is removed rather than shortened
_WHOLE_MAX: Final = 512  # a `whole` value longer than this is shortened when all else failed

Dumps = Callable[[Mapping[str, Any]], bytes]


def _size(value: Any, dumps: Dumps) -> int:
    return len(dumps({"": value})) - 5  # {"":...}


def _shorten(text: str, budget: int, dumps: Dumps) -> str:
    """Return *text* cut in the middle so that it encodes to at most *budget* bytes."""
    if _size(text, dumps) <= budget:
        return text
    per_char = max(_size(text, dumps) / max(len(text), 1), 1.0)
    keep = int(budget / per_char)
    while True:
        keep = max(keep - 32, 0)  # room for the note
        head, tail = keep - keep // 2, keep // 2
        gone = text[head : len(text) - tail]
        short = f"{text[:head]}…[{_size(gone, dumps) - 2} bytes cut]…{text[len(text) - tail :]}"
        if _size(short, dumps) <= budget or keep == 0:
            return short
        keep = int(keep * 0.9)


def _marker(cut: dict[str, int]) -> dict[str, int]:
    ranked = sorted(cut.items(), key=lambda item: item[1], reverse=True)
    marker = {name[:_NAME_MAX]: size for name, size in ranked[:_LISTED]}
    if len(ranked) > _LISTED:
        marker["(more)"] = len(ranked) - _LISTED
    return marker


def _give_back(
    data: Mapping[str, Any],
    out: dict[str, Any],
    cut: dict[str, int],
    encoded: bytes,
    limit: int,
    dumps: Dumps,
) -> bytes:
    # Removing a whole key may have freed more room than needed: the largest removed
    # strings come back, shortened to the room left, in their places.
    for key in sorted(cut, key=cut.__getitem__, reverse=True):
        value = data.get(key)
        room = limit - len(encoded) - len(dumps({key: None}))
        if key in out or key == MARKER or not isinstance(value, str) or room < _KEEP_MIN:
            continue
        trial = {
            name: out[name] if name in out else _shorten(value, room, dumps)
            for name in data
            if name in out or name == key
        }
        line = dumps({**trial, MARKER: _marker(cut)})
        if len(line) <= limit:
            out, encoded = trial, line
    return encoded


def fit(
    data: Mapping[str, Any],
    encoded: bytes,
    limit: int,
    protected: Collection[str],
    dumps: Dumps,
    whole: Collection[str] = (),
) -> bytes:
    """Return *encoded* (``dumps(data)``) if it is at most *limit* bytes, else a cut line.

    :param protected: keys never removed (the head and the request context); their
        strings are shortened only when cutting every other key was not enough.
    :param whole: protected keys never shortened either (``timestamp``, ``level``,
        ``logger``), unless the line cannot fit any other way.
    :param dumps: the serialiser that made *encoded*; never raises.
    :returns: one JSON object of at most *limit* bytes, if *limit* leaves room for the
        head keys at all (a few hundred bytes).
    """
    if len(encoded) <= limit:
        return encoded
    out = dict(data)
    cut: dict[str, int] = {}
    if MARKER in out:  # a call's own key named like the marker would be overwritten by it
        cut[MARKER] = _size(out.pop(MARKER), dumps)
    shortened: set[str] = set()
    for in_head in (False, True):
        while True:
            # First the call's keys (a shortened string may be removed on a second
            # round); then the protected strings, each shortened once at most.
            candidates = [
                key
                for key in out
                if (key in protected) == in_head
                and (
                    not in_head
                    or (isinstance(out[key], str) and key not in shortened and key not in whole)
                )
            ]
            if not candidates:
                break
            sizes = {key: _size(out[key], dumps) for key in candidates}
            excess = len(encoded) - limit
            for key in sorted(candidates, key=sizes.__getitem__, reverse=True):
                value = out[key]
                cut.setdefault(key, sizes[key])
                budget = sizes[key] - excess - 24 - len(key)  # 24: the marker's entry
                if isinstance(value, str) and key not in shortened and budget >= _KEEP_MIN:
                    out[key] = _shorten(value, budget, dumps)
                    shortened.add(key)
                    excess -= sizes[key] - budget
                elif key in protected:
                    out[key] = _shorten(value, _KEEP_MIN, dumps)
                    shortened.add(key)
                    excess -= sizes[key] - _KEEP_MIN
                else:
                    del out[key]
                    excess -= sizes[key] + len(key) + 4
                if excess <= 0:
                    break
            encoded = dumps({**out, MARKER: _marker(cut)})
            if len(encoded) <= limit:
                return _give_back(data, out, cut, encoded, limit, dumps)
    # Still too long: keys with huge names, or non-string context. Keep the head alone.
    head = {
        key: value
        if _size(value, dumps) <= (_WHOLE_MAX if key in whole else _KEEP_MIN)
        else _shorten(str(value), _KEEP_MIN, dumps)
        for key, value in out.items()
        if key in protected
    }
    return dumps({**head, MARKER: {"(all other keys)": len(dumps(data))}})
