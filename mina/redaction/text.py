"""Text rules: credentials found by shape, ``name=value`` pairs and flags, PII.

Each rule has a near miss in the tests that is kept:

- ``name=value`` with no spaces (query strings, logfmt, ``--flag=value``), ``"name": value``
  (JSON, also escaped inside JSON, and reprs) and ``name: value`` (headers; the rest of the
  line) are redacted when *name* is a sensitive key (see `mina.redaction.keys`).
  ``name = value`` with spaces and an unquoted value is code
  (``password = request.json["password"]``) and is kept, as are templates (``token=%s``,
  ``{token}``) so Sentry still groups them.
- ``--name value`` on a command line, and ``"--name", "value"`` in a list's repr
  (``sys.argv``, also as Sentry's reprs ``"'--token'"``): the value after a flag whose name is
  a sensitive key is judged like the value of that key (so ``--max-tokens 100`` is kept). A
  value that is another ``--flag`` is not a value, and ``--no-...`` flags are switches.
  ``--name=value`` is a pair (above). Not in source lines.
- Unquoted ``null``/``None``/``true``/``True``/``false``/``False`` values are kept
  (``"token": null``, ``Login(password=None)``).
- ``Bearer <credential>`` of 8 characters or more (the scheme word is kept); ``Basic`` the
  same unless the next word is a plain word (``Basic authentication``).
- Shapes (`mina.redaction.shapes`): vendors' credential formats, JWTs, PEM private key
  bodies, URL passwords (``postgres://u:[REDACTED]@host``), Sentry DSN keys, Mina's own API
  tokens; and card numbers (`mina.redaction.cards`).
- Unless *send_pii*: e-mail addresses and IP addresses other than loopback and unspecified
  ones (`mina.redaction.pii`).
- Source lines (`TextRedactor.redact_code`) get only the shapes and string literals under
  sensitive names (``password="hunter2"``), no other pairs and no PII: code stays readable
  while a hard-coded secret still goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from mina.redaction.cards import CARD, is_card
from mina.redaction.catalogue import assignments, names_secret
from mina.redaction.decode import encoded_spans, may_be_encoded
from mina.redaction.keys import (
    COUNT_OK,
    DIRTY,
    JUDGED,
    NAMED,
    PII,
    PII_PHRASES,
    SECRET,
    class_name,
    classify,
    kept_text,
    phrases,
    words,
)
from mina.redaction.pii import personal_data
from mina.redaction.shapes import Span, credentials
from mina.redaction.values import (
    QUOTED,
    REDACTED,
    bare_kind,
    inside,
    line_end,
    literals_of,
    value_span,
    whole_literal,
)

__all__ = ["REDACTED", "TextRedactor"]


_CACHE_MAX: Final = 4096
_CLEAN_MAX_LEN: Final = 256
_BENIGN_MAX: Final = 256  # recent ids and timestamps found benign

# The name half of a name=value / "name": value pair (also --name=value); the value is matched
# separately.
_PAIR: Final = re.compile(
    r"(?<![\w.\-\[\]])(?:--?)?(\\?[\"']|)([A-Za-z_][\w.\-\[\]]*)\1([ \t]*[:=][ \t]*)(?![/=:])"
)
# The name half of a pair in a repr of pairs: ('X-Api-Key', 'k1'), ("token", "abc").
_TUPLE_PAIR: Final = re.compile(r"\((['\"])([A-Za-z_][\w.\-]*)\1,[ \t]*(?=['\"])")
_PLACEHOLDER: Final = re.compile(r"%(?:\([\w.]*\))?[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|\{[\w.!:\[\]]*\}")
# "--password value" on a command line; "'--password', 'value'" in a list's repr. A value
# that is another flag, quoted or not, is none ("'--token', '--verbose'").
_FLAG_TEXT: Final = re.compile(
    r"(?<![\w\-])--([A-Za-z][\w.\-]*)(?:[ \t]+|(['\"]),[ \t]*(?=['\"]))(?!['\"]?--)"
)
_FLAG_VALUE: Final = re.compile(r"[^\s\"']+")
# A flag as an item of an argv-like list (also as Sentry's repr of it: "'--token'").
FLAG_ITEM: Final = re.compile(r"(['\"]?)--?([A-Za-z][\w.\-]*)\1")
# UUIDs (dashed, or 32 lowercase hex digits as uuid4().hex makes Mina's request and
# meeting ids) and ISO timestamps: no pattern above can find a secret in them
# (tests/redaction/test_text.py holds the scan to that).
_BENIGN: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-f]{32}"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
)
# Unquoted literals that are never secrets (JSON, Python reprs): "token": null, token=None.
_LITERALS: Final = frozenset({"null", "None", "true", "True", "false", "False"})


def splice(text: str, spans: list[Span]) -> str:
    # Overlapping or touching spans merge into one marker.
    spans.sort()
    parts = []
    pos = 0
    end = -1
    for start, stop in spans:
        if start <= end:
            end = max(end, stop)
            continue
        if end >= 0:
            parts.append(REDACTED)
            pos = end
        parts.append(text[pos:start])
        end = stop
    parts.append(REDACTED)
    parts.append(text[end:])
    return "".join(parts)


class TextRedactor:
    """The text half of `mina.redaction.Redactor`: key decisions and text scanning.

    Holds the options and the caches; `mina.redaction.walk.Redactor` adds structures.
    """

    __slots__ = (
        "_benign",
        "_clean",
        "_clean_code",
        "_extra_keys",
        "_keys",
        "_patterns",
        "_pii_keys",
        "max_depth",
        "max_text",
        "send_pii",
    )

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        extra_patterns: Iterable[str | re.Pattern[str]] = (),
        send_pii: bool = False,
        max_depth: int = 32,
        max_text: int = 64 * 1024,
    ) -> None:
        self.send_pii = send_pii
        self.max_depth = max_depth
        self.max_text = max_text
        self._extra_keys = phrases(extra_keys)
        self._pii_keys = () if send_pii else PII_PHRASES
        self._patterns = tuple(re.compile(p) for p in extra_patterns)
        self._keys: dict[str, int] = {}
        self._clean: set[str] = set()
        self._clean_code: set[str] = set()
        self._benign: set[str] = set()

    # -- keys -----------------------------------------------------------------------------

    def is_sensitive_key(self, key: object) -> bool:
        """Return whether values stored under *key* are redacted (decisions are cached)."""
        return isinstance(key, str) and bool(self._key_state(key) & (SECRET | COUNT_OK))

    def _key_state(self, key: str) -> int:
        state = self._keys.get(key)
        if state is None:
            state = self._classify(key)
            if not state & DIRTY:  # never keep a key holding a secret alive in the cache
                if len(self._keys) >= _CACHE_MAX:
                    self._keys.clear()
                self._keys[key] = state
        return state

    def _classify(self, key: str) -> int:
        dirty = DIRTY if self._scan(key, code=False) is not key else 0
        if class_name(key):
            return dirty  # "TokenExpiredError: ...": an exception's message follows
        state = classify(words(key), self._extra_keys, self._pii_keys)
        if not state & JUDGED and names_secret(key):
            state |= NAMED
        return dirty | state

    # -- text -----------------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """Return *text* with every secret in it replaced by `REDACTED`.

        Harmless text is kept; *text* itself is returned when nothing was found.
        """
        return self._text(text, code=False)

    def redact_code(self, text: str) -> str:
        """Return *text*, a line of source code, with only hard-coded secrets replaced.

        Credential shapes and string literals under sensitive names
        (``password="hunter2"``) go; other pairs (``password = request.json["password"]``)
        and PII stay, so a frame's source lines remain readable.
        """
        return self._text(text, code=True)

    def changes(self, text: str) -> bool:
        """Return whether `redact_text` would change *text* (it holds a secret, or PII).

        For callers that must refuse rather than redact a value, such as an incoming
        ``X-Request-ID`` that is echoed back. Text longer than *max_text* counts as changed
        (it would be truncated).
        """
        return self._text(text, code=False) is not text

    def _text(self, text: str, *, code: bool) -> str:
        if len(text) <= _CLEAN_MAX_LEN and len(text) <= self.max_text:
            # Event names, paths, methods, source lines... repeat: remember the short strings
            # found clean (only those, so no secret is kept alive by the cache).
            clean = self._clean_code if code else self._clean
            if text in clean:
                return text
            if self._benign_id(text):
                return text
            out = self._scan(text, code=code)
            if out is text:
                if len(clean) >= _CACHE_MAX:
                    clean.clear()
                clean.add(text)
            return out
        if len(text) <= self.max_text:
            return self._scan(text, code=code)
        head = text[: self.max_text]
        if not text[len(head)].isspace():
            # Drop a token cut in half (up to 512 characters) rather than leak its start.
            keep = len(head) - 512
            head = head[: max(keep, *(head.rfind(c, keep) + 1 for c in " \t\r\n"))]
        cut = len(text) - len(head)
        return f"{self._scan(head, code=code)}...[TRUNCATED {cut} chars]"

    def _known_clean(self, text: str) -> bool:
        # The fast paths' test: a cached clean string, or an id or time.
        return text in self._clean or self._benign_id(text)

    def _benign_id(self, text: str) -> bool:
        # A UUID or a timestamp. Each is unique, so they get a small cache of their own
        # (a cache of every one would push out the event names): the few a request
        # repeats on its lines (its meeting's id) are matched once.
        if text in self._benign:
            return True
        if not (20 <= len(text) <= 36) or self._patterns or _BENIGN.fullmatch(text) is None:
            return False
        if len(self._benign) >= _BENIGN_MAX:
            self._benign.clear()
        self._benign.add(text)
        return True

    def _scan(self, text: str, *, code: bool) -> str:
        spans = self._spans(text, code=code)
        if may_be_encoded(text):
            # What an encoding hides (%3D, \t, base64): found in decoded views, replaced
            # where it stands in the text.
            encoded_spans(text, lambda view: self._spans(view, code=code), spans.append)
        return splice(text, spans) if spans else text

    def _spans(self, text: str, *, code: bool) -> list[Span]:
        # Cheap substring checks gate each pattern: typical short values run two regexes.
        spans: list[Span] = []
        add = spans.append
        authorities = credentials(text, add)
        if "=" in text or ":" in text:
            self._pairs(text, spans, code=code)
        if "('" in text or '("' in text:
            self._tuple_pairs(text, spans, code=code)
        if not code and "--" in text:
            self._flags(text, spans)
        assignments(text, add, spans)  # after the pairs: a value they took is not read again
        first = CARD.search(text)
        for m in () if first is None else CARD.finditer(text, first.start()):
            digits = m.group().replace(" ", "").replace("-", "")
            if is_card(digits):
                add(m.span())
        if not self.send_pii and not code:
            personal_data(text, authorities, add)
        for pattern in self._patterns:
            for m in pattern.finditer(text):
                span = m.span(1) if pattern.groups else m.span()
                if span[1] > span[0]:
                    add(span)
        return spans

    def _pairs(self, text: str, spans: list[Span], *, code: bool) -> None:
        # In source code only string literals count: password="hunter2" is a hard-coded
        # secret, password=request.json["password"] and password: str are code.
        # A pair inside a bare or a line value already redacted ("password=password=...")
        # has its value inside that value too: skipping it keeps the scan linear.
        covered = -1
        covered_sep = ""
        literals = literals_of(text) if code else None
        for m in _PAIR.finditer(text):
            pos = m.end()
            if pos < covered and bare_kind(text, m) == covered_sep:
                continue
            if literals is not None and inside(literals, m.start()):
                continue  # '"session=" + sid': text in a string literal, not a pair
            state = self._key_state(m.group(2))
            if not state & JUDGED:
                continue
            span = value_span(text, pos, quoted_name=bool(m.group(1)), sep=m.group(3))
            if span is not None:
                before = len(spans)
                self._judge(text, span, state, spans, code=code)
                if len(spans) > before and span[1] > covered:
                    kind = bare_kind(text, m)
                    if kind:
                        covered, covered_sep = span[1], kind

    def _tuple_pairs(self, text: str, spans: list[Span], *, code: bool) -> None:
        # ('X-Api-Key', 'k1') in the repr of a list of pairs (werkzeug's EnvironHeaders and
        # MultiDicts, http.client's header lists, urlencode input).
        literals = literals_of(text) if code else None
        for m in _TUPLE_PAIR.finditer(text):
            if literals is not None and inside(literals, m.start()):
                continue
            state = self._key_state(m.group(2))
            if state & JUDGED:
                span = value_span(text, m.end(), quoted_name=True, sep=",")
                if span is not None:
                    self._judge(text, span, state, spans, code=code)

    def _judge(self, text: str, span: Span, state: int, spans: list[Span], *, code: bool) -> None:
        # Add *span*, the value of a pair or flag under a key in *state*, unless it is kept.
        start, end = span
        quoted = text[start - 1 : start] in ("'", '"')
        if code and (not quoted or not whole_literal(text, end + 1)):
            return  # code, or a literal that is only part of the value ('"a=" + b')
        value = text[start:end]
        if not value or value == REDACTED or (not quoted and value in _LITERALS):
            return
        if kept_text(state, value):
            return
        template = _PLACEHOLDER.match(value)
        if template and not value[template.end() :].strip(",.;:!?"):
            return  # a template ("token=%s"): it groups, and holds no secret
        spans.append(span)

    def _flags(self, text: str, spans: list[Span]) -> None:
        # "--password hunter2" and, in a list's repr, "'--password', 'hunter2'".
        for m in _FLAG_TEXT.finditer(text):
            state = self._flag_state(m.group(1))
            if not state:
                continue
            pos = m.end()
            quote = text[pos : pos + 1]
            if quote in ("'", '"'):
                value = QUOTED.match(text, pos)
                end = value.end() - 1 if value is not None else line_end(text, pos)
                self._judge(text, (pos + 1, end), state, spans, code=False)
            else:
                bare = _FLAG_VALUE.match(text, pos)
                if bare is not None:
                    self._judge(text, bare.span(), state, spans, code=False)

    def _flag_state(self, name: str) -> int:
        # The key state of a command-line flag's name; 0 for "--no-auth" (a switch).
        if name[:3].lower() in ("no-", "no_"):
            return 0
        return self._key_state(name) & (JUDGED | PII)  # "--ip 127.0.0.1" stays

    # -- structures -----------------------------------------------------------------------
