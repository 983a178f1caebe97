"""Structure walking: `Redactor`, for values, mappings, sequences and structlog events.

Mappings are judged key by key (`mina.redaction.keys`), text is scanned
(`mina.redaction.text`), and containers are copied only when something in them changed, so
the common case (nothing to redact) allocates nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final, TypeVar

from mina.redaction.catalogue import keyed_value
from mina.redaction.keys import DIGITS_OK, DIRTY, JUDGED, NAMED, PASS, keeps
from mina.redaction.text import FLAG_ITEM, REDACTED, TextRedactor

__all__ = ["CYCLE", "MAX_DEPTH", "Redactor", "register_wrapper"]

#: Replaces a container that contains itself.
CYCLE: Final = "<cycle>"

#: Replaces a container nested deeper than ``max_depth``.
MAX_DEPTH: Final = "<max depth>"

_SCALARS: Final = frozenset({int, float, bool, type(None), complex})
_CONTAINERS: Final = frozenset({dict, list, tuple})  # checked before the slower ABCs
# Rendered by the encoders in a form that cannot carry a secret.
_OPAQUE: Final = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    decimal.Decimal,
)

W = TypeVar("W")

# Types that wrap one value and some metadata (Sentry's AnnotatedValue): walked through.
_WRAPPERS: dict[type[Any], tuple[Callable[[Any], Any], Callable[[Any, Any], Any]]] = {}


def register_wrapper(
    cls: type[W], unwrap: Callable[[W], Any], rewrap: Callable[[W, Any], W]
) -> None:
    """Redact instances of *cls* (exactly that type) through the one value they wrap.

    ``unwrap(obj)`` returns the wrapped value; ``rewrap(obj, redacted)`` a copy of *obj*
    around the redacted value, called only when redaction changed it. Without this, an
    object is judged by its ``repr()``. Lets a payload format keep its own types (Sentry's
    ``AnnotatedValue`` keeps its metadata) while this package imports no SDK.
    """
    _WRAPPERS[cls] = (unwrap, rewrap)


class Redactor(TextRedactor):
    """Redact secrets (and, unless *send_pii*, PII) from values, text and event dicts.

    An instance is also a structlog processor (`Redactor.__call__`).

    :param extra_keys: more key names to redact, matched on their words like the built-in
        ones (``MINA_REDACT_KEYS``, ``logging.yaml``); never exempted as metrics.
    :param extra_patterns: more regular expressions to redact wherever they appear in text.
        A pattern without groups has its whole match redacted; a pattern with groups only
        group 1 (so ``ticket=(\\w+)`` keeps ``ticket=``).
    :param send_pii: keep e-mail and client IP addresses (``MINA_SEND_PII=1``).
    :param max_depth: containers nested deeper become ``"<max depth>"``.
    :param max_text: only the first *max_text* characters of a string are scanned; the rest
        is dropped and replaced by ``"...[TRUNCATED <n> chars]"``.
    :raises re.error: for an invalid pattern in *extra_patterns*.
    """

    __slots__ = ()

    def redact(self, value: Any) -> Any:
        """Return a redacted copy of *value*; *value* itself when nothing had to change.

        Mappings become dicts (sensitive keys keep their key, the value becomes `REDACTED`);
        lists and tuples keep their type; sets become lists; dataclasses and Pydantic-style
        models become dicts; ``bytes`` become text (UTF-8, undecodable bytes replaced);
        text is scanned with `redact_text`. Numbers, ``None``, dates and UUIDs are kept.
        Any other object is kept when its ``repr()`` holds no secret, and is otherwise
        replaced by its redacted ``repr()`` (an exception by ``"Type: redacted message"``),
        so it cannot leak later through an encoder's ``repr()``. Never raises, never loops:
        cycles become ``"<cycle>"`` and nesting past *max_depth* ``"<max depth>"``.
        """
        try:
            return self._walk(value, 0, set())
        except Exception:  # fail closed: something we cannot inspect is not let through
            return REDACTED

    def _walk(self, value: Any, depth: int, seen: set[int]) -> Any:
        kind = type(value)
        if kind is str:
            return self._text(value, code=False)
        if kind in _SCALARS:
            return value
        if kind in _CONTAINERS or isinstance(value, Mapping | list | tuple | set | frozenset):
            if depth >= self.max_depth:
                return MAX_DEPTH
            if id(value) in seen:
                return CYCLE
            seen.add(id(value))
            try:
                if kind is dict or isinstance(value, Mapping):
                    return self._mapping(value, depth, seen)
                return self._sequence(value, depth, seen)
            finally:
                seen.discard(id(value))
        if isinstance(value, str):  # str subclasses (StrEnum members...)
            return self._text(value, code=False)
        if isinstance(value, bytes | bytearray | memoryview):
            return self._text(bytes(value).decode("utf-8", "replace"), code=False)
        wrapper = _WRAPPERS.get(kind)
        if wrapper is not None:
            unwrap, rewrap = wrapper
            wrapped = unwrap(value)
            inner = self._walk(wrapped, depth + 1, seen)
            return value if inner is wrapped else rewrap(value, inner)
        if isinstance(value, _OPAQUE):
            return value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            return self._walk(fields, depth, seen)
        model = _model_dict(value)
        if model is not None:
            return self._walk(model, depth, seen)
        return self._opaque(value)

    def _mapping(self, value: Mapping[Any, Any], depth: int, seen: set[int]) -> Any:
        out: dict[Any, Any] | None = None
        changed = not isinstance(value, dict)
        keys = self._keys
        for index, (key, item) in enumerate(value.items()):
            kind = type(item)
            if (kind in _SCALARS or (kind is str and self._known_clean(item))) and keys.get(
                key
            ) in PASS:
                new_key, new = key, item  # the common case, without the calls below
            else:
                new_key, new = self._item(key, item, depth, seen)
            if out is None:
                if new_key is key and new is item and not changed:
                    continue
                # First change: copy the unchanged items before it.
                out = dict(itertools.islice(value.items(), index))
            out[new_key] = new
        return value if out is None else out

    def _item(self, key: Any, item: Any, depth: int, seen: set[int]) -> tuple[Any, Any]:
        if type(key) is not str:
            return key, self._walk(item, depth + 1, seen)
        state = self._key_state(key)
        if state & DIRTY:
            key = self._scan(key, code=False)
        if state & JUDGED and not keeps(state, item):
            return key, item if type(item) is str and item == REDACTED else REDACTED
        if state & NAMED and type(item) is str and keyed_value(key, item.strip("'\"")):
            return key, REDACTED  # "ASANA_CLIENT_ID": "1234567890123456" (docs/redaction.md)
        if state & DIGITS_OK and type(item) is str and item.isdigit() and not self._patterns:
            return key, item  # an id or an epoch, not a card number
        return key, self._walk(item, depth + 1, seen)

    def _sequence(self, value: Any, depth: int, seen: set[int]) -> Any:
        items = []
        flag = 0  # the state of the "--flag" just before (argv: ["--token", "abc"])
        for item in value:
            if flag and not (type(item) is str and item.startswith("--")):
                new = self._walk(item, depth + 1, seen)
                if type(new) is str:
                    bare = new[1:-1] if new[:1] in ("'", '"') and new[-1:] == new[:1] else new
                    if bare != REDACTED and not keeps(flag, bare):
                        new = REDACTED
                elif not keeps(flag, new):
                    new = REDACTED
            else:
                new = self._walk(item, depth + 1, seen)
            items.append(new)
            flag = 0
            if type(item) is str and item[:1] in ("-", "'", '"') and 2 < len(item) <= 64:
                m = FLAG_ITEM.fullmatch(item)
                if m is not None:
                    flag = self._flag_state(m.group(2))
        if isinstance(value, set | frozenset):
            return items
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        if isinstance(value, list):
            return items
        make = getattr(type(value), "_make", None)  # namedtuple
        return make(items) if make is not None else tuple(items)

    def _opaque(self, value: Any) -> Any:
        if isinstance(value, BaseException):
            message = _safe_text(str, value)
            if message is None:
                return f"<unrepresentable {type(value).__name__}>"
            redacted = self._text(message, code=False)
            return value if redacted is message else f"{type(value).__name__}: {redacted}"
        text = _safe_text(repr, value)
        if text is None:
            return f"<unrepresentable {type(value).__name__}>"
        redacted = self._text(text, code=False)
        return value if redacted is text else redacted

    # -- structlog ------------------------------------------------------------------------

    def harmless_keys(self, keys: Iterable[str]) -> bool:
        """Whether every one of *keys* is a harmless name: `__call__` keeps it, and judges
        its value by the value alone (see `clean_values`)."""
        return all(type(key) is str and self._key_state(key) in PASS for key in keys)

    def clean_values(self, values: Iterable[Any]) -> bool:
        """Whether `__call__` keeps each of *values* as it is under a harmless key:
        numbers, ``None`` and strings already found clean (an event dict whose keys are
        `harmless_keys` and whose values are these comes out unchanged)."""
        for value in values:
            kind = type(value)
            if kind is str:
                if not self._known_clean(value):
                    return False
            elif kind not in _SCALARS:
                return False
        return True

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Redact *event_dict* in place (keys, values and the ``event`` text); return it.

        ``exc_info`` is passed through untouched: it must stay an exception for the renderer,
        and the rendered traceback is redacted by Mina's formatters.
        """
        changes: list[tuple[Any, Any, Any]] | None = None
        seen: set[int] = set()
        keys = self._keys
        for key, value in event_dict.items():
            # Fast path, most entries of most events: a known harmless key, and a number
            # or a string already found clean.
            if keys.get(key) in PASS:
                kind = type(value)
                if kind in _SCALARS or (kind is str and self._known_clean(value)):
                    continue
            if key == "exc_info":
                continue
            try:
                new_key, new = self._item(key, value, 0, seen)
            except Exception:  # fail closed
                new_key, new = key, REDACTED
            if new_key is not key or new is not value:
                if changes is None:
                    changes = []
                changes.append((key, new_key, new))
        if changes is not None:
            for key, new_key, new in changes:
                if new_key is not key:
                    del event_dict[key]
                event_dict[new_key] = new
        return event_dict


def _model_dict(value: Any) -> Mapping[str, Any] | None:
    # Pydantic v2 (model_dump) and v1 (dict, with __fields__); never other objects' dict().
    dump = getattr(value, "model_dump", None)
    if dump is None and hasattr(type(value), "__fields__"):
        dump = getattr(value, "dict", None)
    if not callable(dump):
        return None
    try:
        result = dump()
    except Exception:
        return None
    return result if isinstance(result, Mapping) else None


def _safe_text(func: Callable[[Any], str], value: Any) -> str | None:
    try:
        text = func(value)
    except Exception:
        return None
    return text if isinstance(text, str) else None
