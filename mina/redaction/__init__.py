"""One redactor for everything that leaves the process: stdout JSON lines and Sentry.

`Redactor` removes secrets by *key* (a value stored under a key such as ``password`` or
``X-Api-Key``) and by *shape* (credentials recognisable inside any text: ``Bearer`` tokens,
JWTs, PEM private keys, URL passwords, ``token=`` pairs, card numbers, well-known API key
formats, and, unless PII may be sent, e-mail and client IP addresses). Every secret becomes
`REDACTED`, the only marker; the text around it is kept, so messages stay readable and errors
still group.

Key rule: a key is split into words (on ``_ - .``, spaces, brackets and camelCase, so
``accessToken``, ``X-Api-Key``, ``AWS_SECRET_ACCESS_KEY`` and ``db.password`` all work) and is
sensitive when it contains one of the secret word sequences (``password``, ``token``,
``api key``, ``private key``, ...). Words, not substrings: ``author`` is not ``auth`` and
``passage`` is not ``pass``. What happens to the value then:

- ``None`` and booleans are never redacted, under any key (``has_password: True``,
  ``token: None``): they cannot hold a secret.
- A *measure* key has a measure word after its last secret (or PII) word (``token_count``,
  ``password_length``, ``pin_attempts``, ``password_set``, ``ip_count``,
  ``token_expires_at``) or one as its first word (``max_tokens``, ``total_tokens``). Its
  value is kept when it is a number (also a number's text, ``"12"``), a date, time or
  duration, and, for time words (``at``, ``expires``, ``until``, ...), an ISO 8601
  timestamp string. Any other value is redacted: ``password_length="hunter2"`` is a bug
  that must not leak.
- A *label* key has a label word after its last secret word (``token_type``,
  ``auth_method``, ``auth_provider``): its value names a kind and is kept when it is a
  number or a plain word (letters, with ``_ - .`` or spaces between words: ``"bearer"``,
  ``"password"``); anything with a digit or a symbol (``"hunter2"``) is redacted.
- The plural ``tokens`` alone names an amount when its value is a number
  (``prompt_tokens=12`` is kept, ``tokens=["..."]`` is not).
- Every other sensitive key's value is redacted, numbers included (``pin: 1234``).
- Kept values are still scanned like any other text (shapes, PII).
- ``extra_keys`` are never measures or labels; PII keys (``ip``, ``remote_addr``...) are.
- Under a harmless key whose last word names an id or a time (``user_id``, ``ids``, ``ts``,
  ``time``, ``*_ns``, ``*_ms``, ``created``...), a bare digit string is an id or an epoch and
  is not checked for card numbers (unless ``extra_patterns`` are set: then it is scanned).

Text rules (each has a near miss in the tests that is kept):

- ``name=value`` with no spaces (query strings, logfmt, ``--flag=value``), ``"name": value``
  (JSON, also escaped inside JSON, and reprs) and ``name: value`` (headers; the rest of the
  line) are redacted when *name* is a sensitive key. ``name = value`` with spaces and an
  unquoted value is code (``password = request.json["password"]``) and is kept, as are
  templates (``token=%s``, ``{token}``) so Sentry still groups them.
- ``--name value`` on a command line, and ``"--name", "value"`` as consecutive items of a
  list of strings (``sys.argv``, also as Sentry's reprs ``"'--token'"``): the value after a
  flag whose name is a sensitive key is judged like the value of that key (so
  ``--max-tokens 100`` is kept). A value that is another ``--flag`` is not a value, and
  ``--no-...`` flags are switches. ``--name=value`` is a pair (above). Not in source lines.
- Unquoted ``null``/``None``/``true``/``True``/``false``/``False`` values are kept
  (``"token": null``, ``Login(password=None)``).
- ``Bearer <credential>`` of 8 characters or more (the scheme word is kept); ``Basic`` the
  same unless the next word is a plain word (``Basic authentication``).
- Shapes: JWTs, PEM private key bodies, URL passwords (``postgres://u:[REDACTED]@host``),
  Sentry DSN keys, card numbers (13 to 19 digits, optionally grouped by spaces or dashes,
  with a known brand's issuer prefix and length, and Luhn-valid: see `_card`; other digit
  runs such as ids and epoch nanoseconds are kept), AWS ``AKIA``/``ASIA`` ids, GitHub,
  Slack, Stripe secret (not publishable ``pk_``), OpenAI-style, Google, GitLab, npm and PyPI
  tokens, and Mina's own API tokens (``mina_`` and 43 or more URL-safe characters, with at
  least one capital or digit, also glued to other text: ``req-mina_...``; ``mina_api`` and
  long snake_case names are kept). `Redactor.changes` tells whether a text holds any of
  this, for callers that must refuse a value rather than redact it.
- Unless *send_pii*: e-mail addresses and IP addresses other than loopback and unspecified
  ones.
- Frames' source lines get only the shapes and string literals under sensitive names
  (``password="hunter2"``), no other pairs and no PII: code stays readable while a
  hard-coded secret still goes.

`redact_sentry_event`, `redact_breadcrumb` and `redact_sentry_log` apply the same redactor
to Sentry's payloads without touching Sentry's structural fields or frames' source lines.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import decimal
import ipaddress
import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final

from sentry_sdk._types import AnnotatedValue
from sentry_sdk.scrubber import DEFAULT_DENYLIST, DEFAULT_PII_DENYLIST

__all__ = [
    "REDACTED",
    "Redactor",
    "redact_breadcrumb",
    "redact_sentry_event",
    "redact_sentry_log",
]

#: What every secret is replaced by, in values and inside text alike.
REDACTED: Final = "[REDACTED]"

#: Replaces a container that contains itself.
CYCLE: Final = "<cycle>"

#: Replaces a container nested deeper than ``max_depth``.
MAX_DEPTH: Final = "<max depth>"

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

# Secret word sequences (a key containing one, as consecutive words, is sensitive). Single
# words that are commonly written as one word ("apikey", "sessionid") are listed as such.
_SECRET_KEYS: Final = (
    "password",
    "passwd",
    "pwd",
    "pw",
    "pass",  # db_pass, smtp_pass; "passage" and "compass" are other words
    "passphrase",
    "passcode",
    "secret",
    "secrets",
    "token",
    "tokens",
    "auth",
    "authorization",
    "authtoken",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "apitoken",
    "credential",
    "credentials",
    "creds",
    "api key",
    "apikey",
    "private key",
    "privatekey",
    "secret key",
    "secretkey",
    "access key",
    "signing key",
    "encryption key",
    "master key",
    "session",
    "sessionid",
    "sessid",
    "jsessionid",
    "phpsessid",
    "connect sid",
    "cookie",
    "cookies",
    "csrf",
    "csrftoken",
    "xsrf",
    "xsrftoken",
    "signature",
    "sig",
    "dsn",
    "jwt",
    "bearer",
    "otp",
    "totp",
    "pin",  # meeting and card PINs are secrets
    "ssn",  # never needed in a log
    "symfony",
    "db params",  # positional SQL parameters: no name tells which one is the password
    "db query parameter",
)
_TIME_WORDS: Final = frozenset(
    {"at", "expires", "expiry", "expiration", "expired", "until", "since", "time", "date"}
    | {"issued", "created", "updated", "changed", "modified", "rotated", "last"}
)
# Sent only when PII may be sent.
_PII_KEYS: Final = ("ip", "ip address", "remote addr", "x forwarded for", "x real ip", "forwarded")
# A word after the last secret (or PII) word, or a first word, that makes the key a measure
# of the secret: its value is kept when it is a number (or a number's text), a date, time or
# duration, and, for the time words, an ISO timestamp. Any other value is still redacted
# ("password_length": "hunter2" is a mistake that must not leak).
_MEASURE_WORDS: Final = frozenset(
    {
        *("count", "counts", "total", "num", "len", "length", "size", "usage", "used"),
        *("limit", "limits", "max", "min", "remaining", "rate", "ttl", "age"),
        *("ms", "ns", "us", "seconds", "secs", "minutes", "hours", "days", "duration"),
        *("attempt", "attempts", "tries", "retries", "failures", "failed", "errors"),
        *("set", "enabled", "disabled", "required", "present", "exists", "valid"),
        *("timeout", "version", "index", "position", "entropy", "strength", "score"),
        *_TIME_WORDS,
    }
)
_METRIC_FIRST: Final = frozenset({"max", "min", "total", "num", "n"})
# A word after the last secret word that makes the key a *label* of the secret: its value
# names a kind or method ("token_type": "bearer", "auth_method": "password"). Kept when it is
# a plain word (letters only, with "_ - ." or spaces between words) or a number; a value with
# digits or symbols is treated as a secret ("token_type": "hunter2" is redacted).
_LABEL_WORDS: Final = frozenset(
    {
        *("type", "types", "kind", "method", "methods", "scheme", "schemes", "provider"),
        *("algorithm", "alg", "format", "mode", "strategy", "backend", "status", "source"),
    }
)
# A harmless key whose last word names an id or a time: a bare digit string under it is an
# id or an epoch, never a card number ("user_id": "4111111111111111" is kept). "number" is
# not one of them: "card_number" holds card numbers.
_DIGITS_KEY_WORDS: Final = frozenset(
    {
        *("id", "ids", "uid", "pk", "seq", "offset", "ts", "time"),
        *("timestamp", "epoch", "ns", "ms", "us", "at", "created", "updated", "modified"),
    }
)

# Key states (cached per key; flags).
_KEEP: Final = 0
_SECRET: Final = 1  # every value but None and booleans is redacted
_COUNT_OK: Final = 2  # the plural "tokens" alone: secret, unless the value is a number
_DIRTY: Final = 4  # the key's own text contains a secret: never cached
_MEASURE: Final = 8  # a measure of a secret (see _MEASURE_WORDS)
_TIME: Final = 16  # a measure that is a time: ISO timestamps are kept too
_LABEL: Final = 32  # a label of a secret (see _LABEL_WORDS)
_DIGITS_OK: Final = 64  # a harmless id or time key: bare digit strings are not card numbers
_JUDGED: Final = _SECRET | _COUNT_OK | _MEASURE | _LABEL  # the value decides
_PASS: Final = frozenset({_KEEP, _DIGITS_OK})  # the fast paths' harmless states
_CACHE_MAX: Final = 4096
_CLEAN_MAX_LEN: Final = 256

_SCALARS: Final = frozenset({int, float, bool, type(None), complex})
# Non-text values a measure key may hold (numbers are checked first).
_MEASURES: Final = (
    int,
    float,
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
)
_CONTAINERS: Final = frozenset({dict, list, tuple})  # checked before the slower ABCs
# Rendered by the encoders in a form that cannot carry a secret.
_OPAQUE: Final = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    decimal.Decimal,
)

_TOKEN = r"[A-Za-z0-9\-._~+/]"
_SHAPES: Final = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"(?:AKIA|ASIA)[A-Z0-9]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|xox[abeprs]-[A-Za-z0-9\-]{10,}|xapp-[A-Za-z0-9\-]{10,}"  # Slack
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{16,}"  # Stripe secrets
    r"|sk-[A-Za-z0-9_\-]{20,}"  # OpenAI-style (sk-..., sk-proj-..., sk-ant-...)
    r"|AIza[A-Za-z0-9_\-]{35}"  # Google API keys
    r"|glpat-[A-Za-z0-9_\-]{20,}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_\-]{50,}"
    r"|eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]*)?"  # JWT (JWS)
    r")(?![A-Za-z0-9_\-])"
)
# Mina's own API tokens (mina.db: TOKEN_PREFIX + secrets.token_urlsafe(32), 43 characters).
# Not in _SHAPES: a token glued to an id ("req-mina_...") or to more text is still one.
_MINA_TOKEN: Final = re.compile(r"(?<![A-Za-z0-9])mina_[A-Za-z0-9_\-]{43,}")
_PEM: Final = re.compile(
    r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)[\s\S]*?(?=-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)"
)
_SCHEME: Final = re.compile(rf"(?i)\b(bearer|basic)[ \t]+({_TOKEN}+=*)")
# A long snake_case name ("mina_transcription_worker_...") has no capital and no digit; a
# random 43-character token has one but with probability about 1e-15.
_IDENTIFIER: Final = re.compile(r"[a-z_\-]+")
_PLAIN_WORD: Final = re.compile(r"[A-Z]?[a-z]+")
# scheme://user:password@host; the password ends at the authority's last "@".
_USERINFO: Final = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,31}://([^\s:/?#@]*)(?::([^\s/?#]*))?@(?=[^\s/?#@]*[A-Za-z0-9\]])"
)
_DSN_KEY: Final = re.compile(r"[0-9a-f]{32}")
# The name half of a name=value / "name": value pair (also --name=value); the value is matched
# separately.
_PAIR: Final = re.compile(
    r"(?<![\w.\-\[\]])(?:--?)?(\\?[\"']|)([A-Za-z_][\w.\-\[\]]*)\1([ \t]*[:=][ \t]*)(?![/=:])"
)
_QUOTED: Final = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'")
_BARE_VALUE: Final = re.compile(r"[^\s&#;\"'<>]+")
_PLACEHOLDER: Final = re.compile(r"%(?:\([\w.]*\))?[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|\{[\w.!:\[\]]*\}")
_CLOSERS: Final = {")": "(", "]": "[", "}": "{"}
# "--password value" on a command line; "'--password', 'value'" in a list's repr.
_FLAG_TEXT: Final = re.compile(
    r"(?<![\w\-])--([A-Za-z][\w.\-]*)(?:[ \t]+|(['\"]),[ \t]*(?=['\"]))(?!--)"
)
_FLAG_VALUE: Final = re.compile(r"[^\s\"']+")
# A flag as an item of an argv-like list (also as Sentry's repr of it: "'--token'").
_FLAG_ITEM: Final = re.compile(r"(['\"]?)--?([A-Za-z][\w.\-]*)\1")
_JSON_VALUE: Final = re.compile(r"[^\s,}\]]+")
_LINE_VALUE: Final = re.compile(r"(?:(?i:bearer|basic)[ \t]+)?([^\r\n]+)")
# Every card format starts with four digits; requiring them keeps the scan cheap.
_CARD: Final = re.compile(r"(?<![0-9A-Za-z])\d{4}(?:[ \-]?\d){9,15}(?![0-9A-Za-z])")
_EMAIL: Final = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_IPV4: Final = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6: Final = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
# UUIDs and ISO timestamps (request ids, times): no pattern above can find a secret in them.
_BENIGN: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
)

_NUMBER: Final = re.compile(r"[+-]?\d{1,20}(?:\.\d{1,20})?")
_TIMESTAMP: Final = re.compile(
    r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)?"
)
_LABEL_VALUE: Final = re.compile(r"[A-Za-z]+(?:[ _.\-][A-Za-z]+)*")
# Unquoted literals that are never secrets (JSON, Python reprs): "token": null, token=None.
_LITERALS: Final = frozenset({"null", "None", "true", "True", "false", "False"})

_Span = tuple[int, int]


def _words(key: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD.findall(key))


def _phrases(names: Iterable[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(p for p in {_words(n) for n in names} if p)


def _find(words: tuple[str, ...], phrases: tuple[tuple[str, ...], ...]) -> int:
    """Return the index after the last match of any of *phrases* in *words*, or -1."""
    end = -1
    for phrase in phrases:
        size = len(phrase)
        for i in range(len(words) - size + 1):
            if words[i : i + size] == phrase:
                end = max(end, i + size)
    return end


def _value_span(text: str, pos: int, *, quoted_name: bool, sep: str) -> _Span | None:
    """Return where the value of a sensitive ``name<sep>`` pair ending at *pos* is."""
    if text.startswith(REDACTED, pos):  # keeps re-redaction a no-op
        return None
    quote = text[pos : pos + 2] if text.startswith(('\\"', "\\'"), pos) else text[pos : pos + 1]
    if quote in ('"', "'", '\\"', "\\'"):  # quoted, also JSON inside JSON (\"...\")
        start = pos + len(quote)
        value = _QUOTED.match(text, pos) if len(quote) == 1 else None
        if value is not None:
            return start, value.end() - 1
        end = text.find(quote, start)
        if end < 0:  # unterminated (cut) quote: everything up to the line's end
            end = _line_end(text, start)
        return start, end
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


def _bare_kind(text: str, pair: re.Match[str]) -> str:
    """Return ``=`` or ``:`` for an unquoted pair whose value is unquoted, else ``""``."""
    pos = pair.end()
    if pair.group(1) or text[pos : pos + 1] in ("'", '"', "\\"):
        return ""
    sep = pair.group(3)
    return "=" if sep == "=" else ":" if ":" in sep else ""


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end


def _card(digits: str) -> bool:
    """Return whether *digits* (13 to 19) can be a payment card number.

    The issuer prefix (IIN) must be a known brand's and the length valid for that brand, and
    the Luhn check must pass: Visa 4 (13, 16, 19 digits), Mastercard 51-55 and 2221-2720
    (16), Amex 34 and 37 (15), Diners 300-305, 3095, 36, 38, 39 (14-19), JCB 3528-3589,
    Discover 6011, 644-649 and 65, UnionPay 62 (16-19). Other digit runs (ids, epoch
    nanoseconds) are not cards.
    """
    size = len(digits)
    first = digits[0]
    if first == "4":
        valid = size in (13, 16, 19)
    elif first == "5":
        valid = size == 16 and "1" <= digits[1] <= "5"
    elif first == "2":
        valid = size == 16 and 2221 <= int(digits[:4]) <= 2720
    elif first == "3":
        two, four = digits[:2], int(digits[:4])
        if two in ("34", "37"):
            valid = size == 15
        else:
            diners = two in ("36", "38", "39") or 3000 <= four <= 3059 or four == 3095
            jcb = 3528 <= four <= 3589
            valid = (diners and 14 <= size <= 19) or (jcb and 16 <= size <= 19)
    elif first == "6":
        discover = digits.startswith(("6011", "65", "62")) or 644 <= int(digits[:3]) <= 649
        valid = 16 <= size <= 19 and discover
    else:
        valid = False
    return valid and _luhn(digits)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _client_ip(text: str) -> bool:
    # Loopback and unspecified addresses identify nobody and keep "listening on" lines readable.
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def _splice(text: str, spans: list[_Span]) -> str:
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


def _safe_text(func: Callable[[Any], str], value: Any) -> str | None:
    try:
        text = func(value)
    except Exception:
        return None
    return text if isinstance(text, str) else None


class Redactor:
    """Redact secrets (and, unless *send_pii*, PII) from values, text and event dicts.

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

    __slots__ = (
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
        self._extra_keys = _phrases(extra_keys)
        self._pii_keys = () if send_pii else _phrases(_PII_KEYS)
        self._patterns = tuple(re.compile(p) for p in extra_patterns)
        self._keys: dict[str, int] = {}
        self._clean: set[str] = set()
        self._clean_code: set[str] = set()

    # -- keys -----------------------------------------------------------------------------

    def is_sensitive_key(self, key: object) -> bool:
        """Return whether values stored under *key* are redacted (decisions are cached)."""
        return isinstance(key, str) and bool(self._key_state(key) & (_SECRET | _COUNT_OK))

    def _key_state(self, key: str) -> int:
        state = self._keys.get(key)
        if state is None:
            state = self._classify(key)
            if not state & _DIRTY:  # never keep a key holding a secret alive in the cache
                if len(self._keys) >= _CACHE_MAX:
                    self._keys.clear()
                self._keys[key] = state
        return state

    def _classify(self, key: str) -> int:
        state = _DIRTY if self._scan(key, code=False) is not key else _KEEP
        words = _words(key)
        if not words:
            return state
        if _find(words, self._extra_keys) >= 0:
            return state | _SECRET
        end = max(_find(words, self._pii_keys), _find(words, _BUILTIN_KEYS))
        if end < 0:
            return state | _DIGITS_OK if words[-1] in _DIGITS_KEY_WORDS else state
        tail = words[end:]
        if words[0] in _METRIC_FIRST or not _MEASURE_WORDS.isdisjoint(tail):
            return state | _MEASURE | (_TIME if not _TIME_WORDS.isdisjoint(tail) else 0)
        if not _LABEL_WORDS.isdisjoint(tail):
            return state | _LABEL
        if _find(words, self._pii_keys) < 0 and _find(words, _SINGULAR_KEYS) < 0:
            return state | _COUNT_OK  # only the plural "tokens": maybe an amount
        return state | _SECRET

    def _keeps(self, state: int, value: Any) -> bool:
        """Return whether *value*, under a key in *state* (`_JUDGED`), cannot be a secret."""
        kind = type(value)
        if kind is bool or value is None:
            return True  # "has_password": True, "token": None
        if state & _SECRET:
            return False
        if isinstance(value, _MEASURES):
            return True
        if isinstance(value, str):
            return _kept_text(state, value)
        return False

        # -- text -----------------------------------------------------------------------------

    def redact_text(self, text: str) -> str:
        """Return *text* with every secret in it replaced by `REDACTED`.

        Harmless text is kept; *text* itself is returned when nothing was found.
        """
        return self._text(text, code=False)

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
            if 20 <= len(text) <= 36 and not self._patterns and _BENIGN.fullmatch(text):
                return text  # ids and times: unique, not worth a place in the cache
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
        return text in self._clean or (
            20 <= len(text) <= 36 and not self._patterns and _BENIGN.fullmatch(text) is not None
        )

    def _scan(self, text: str, *, code: bool) -> str:
        # Cheap substring checks gate each pattern: typical short values run two regexes.
        spans: list[_Span] = []
        add = spans.append
        if "-----BEGIN" in text:
            for m in _PEM.finditer(text):
                if m.end() > m.end(1):
                    add((m.end(1), m.end()))
        first = _SHAPES.search(text)  # search before finditer: most texts have none
        if first is not None:
            for m in _SHAPES.finditer(text, first.start()):
                add(m.span())
        if "mina_" in text:
            for m in _MINA_TOKEN.finditer(text):
                if not _IDENTIFIER.fullmatch(m.group()):
                    add(m.span())
        lower = text.lower()
        if "bearer" in lower or "basic" in lower:
            for m in _SCHEME.finditer(text):
                credential = m.group(2)
                if len(credential) >= 8 and (
                    m.group(1).lower() == "bearer" or not _PLAIN_WORD.fullmatch(credential)
                ):
                    add(m.span(2))
        authorities: list[_Span] = []
        if "://" in text and "@" in text:
            for m in _USERINFO.finditer(text):
                authorities.append((m.start(1), m.end()))
                password = m.group(2)
                if password and not password.startswith("{"):  # not an f-string in code
                    add(m.span(2))
                elif _DSN_KEY.fullmatch(m.group(1)):
                    add(m.span(1))
        if "=" in text or ":" in text:
            self._pairs(text, spans, code=code)
        if not code and "--" in text:
            self._flags(text, spans)
        first = _CARD.search(text)
        for m in () if first is None else _CARD.finditer(text, first.start()):
            digits = m.group().replace(" ", "").replace("-", "")
            if _card(digits):
                add(m.span())
        if not self.send_pii and not code:
            if "@" in text:
                starts = [a for a, _ in authorities]  # in order: bisect, not a scan
                for m in _EMAIL.finditer(text):
                    i = bisect.bisect_right(starts, m.start()) - 1
                    if i < 0 or m.start() >= authorities[i][1]:  # not a URL's user:password@
                        add(m.span())
            if text.count(".") >= 3:
                for m in _IPV4.finditer(text):
                    if _client_ip(m.group()):
                        add(m.span())
            if "::" in text or text.count(":") >= 5:
                for m in _IPV6.finditer(text):
                    if _client_ip(m.group()):
                        add(m.span())
        for pattern in self._patterns:
            for m in pattern.finditer(text):
                span = m.span(1) if pattern.groups else m.span()
                if span[1] > span[0]:
                    add(span)
        return _splice(text, spans) if spans else text

    def _pairs(self, text: str, spans: list[_Span], *, code: bool) -> None:
        # In source code only string literals count: password="hunter2" is a hard-coded
        # secret, password=request.json["password"] and password: str are code.
        # A pair inside a bare or a line value already redacted ("password=password=...")
        # has its value inside that value too: skipping it keeps the scan linear.
        covered = -1
        covered_sep = ""
        for m in _PAIR.finditer(text):
            pos = m.end()
            if pos < covered and _bare_kind(text, m) == covered_sep:
                continue
            state = self._key_state(m.group(2))
            if not state & _JUDGED:
                continue
            span = _value_span(text, pos, quoted_name=bool(m.group(1)), sep=m.group(3))
            if span is not None:
                before = len(spans)
                self._judge(text, span, state, spans, code=code)
                if len(spans) > before and span[1] > covered:
                    kind = _bare_kind(text, m)
                    if kind:
                        covered, covered_sep = span[1], kind

    def _judge(self, text: str, span: _Span, state: int, spans: list[_Span], *, code: bool) -> None:
        # Add *span*, the value of a pair or flag under a key in *state*, unless it is kept.
        start, end = span
        quoted = text[start - 1 : start] in ("'", '"')
        if code and not quoted:
            return
        value = text[start:end]
        if not value or value == REDACTED or (not quoted and value in _LITERALS):
            return
        if _kept_text(state, value):
            return
        template = _PLACEHOLDER.match(value)
        if template and not value[template.end() :].strip(",.;:!?"):
            return  # a template ("token=%s"): it groups, and holds no secret
        spans.append(span)

    def _flags(self, text: str, spans: list[_Span]) -> None:
        # "--password hunter2" and, in a list's repr, "'--password', 'hunter2'".
        for m in _FLAG_TEXT.finditer(text):
            state = self._flag_state(m.group(1))
            if not state:
                continue
            pos = m.end()
            quote = text[pos : pos + 1]
            if quote in ("'", '"'):
                value = _QUOTED.match(text, pos)
                end = value.end() - 1 if value is not None else _line_end(text, pos)
                self._judge(text, (pos + 1, end), state, spans, code=False)
            else:
                bare = _FLAG_VALUE.match(text, pos)
                if bare is not None:
                    self._judge(text, bare.span(), state, spans, code=False)

    def _flag_state(self, name: str) -> int:
        # The key state of a command-line flag's name; 0 for "--no-auth" (a switch).
        if name[:3].lower() in ("no-", "no_"):
            return 0
        return self._key_state(name) & _JUDGED

    # -- structures -----------------------------------------------------------------------

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
        if isinstance(value, AnnotatedValue):
            inner = self._walk(value.value, depth + 1, seen)
            return value if inner is value.value else AnnotatedValue(inner, value.metadata)
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
            ) in _PASS:
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
        if state & _DIRTY:
            key = self._scan(key, code=False)
        if state & _JUDGED and not self._keeps(state, item):
            return key, item if type(item) is str and item == REDACTED else REDACTED
        if state & _DIGITS_OK and type(item) is str and item.isdigit() and not self._patterns:
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
                    if bare != REDACTED and not self._keeps(flag, bare):
                        new = REDACTED
                elif not self._keeps(flag, new):
                    new = REDACTED
            else:
                new = self._walk(item, depth + 1, seen)
            items.append(new)
            flag = 0
            if type(item) is str and item[:1] in ("-", "'", '"') and 2 < len(item) <= 64:
                m = _FLAG_ITEM.fullmatch(item)
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
            if keys.get(key) in _PASS:
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


_BUILTIN_KEYS: Final = _phrases(
    [*_SECRET_KEYS, *(k for k in DEFAULT_DENYLIST if k not in DEFAULT_PII_DENYLIST)]
)
# Every built-in phrase but the plural "tokens" (see the key rule).
_SINGULAR_KEYS: Final = tuple(p for p in _BUILTIN_KEYS if p != ("tokens",))


def _kept_text(state: int, text: str) -> bool:
    # The text of a value under a measure or label key that cannot be a secret.
    if state & _SECRET or len(text) > 40:
        return False
    if _NUMBER.fullmatch(text):
        return True
    if state & _TIME and _TIMESTAMP.fullmatch(text):
        return True
    return bool(state & _LABEL) and _LABEL_VALUE.fullmatch(text) is not None


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


# -- Sentry -----------------------------------------------------------------------------------

# Sentry's own fields: ids, times, SDK and module versions. Nothing user-controlled.
_SENTRY_STRUCTURE: Final = frozenset(
    {
        "event_id",
        "timestamp",
        "start_timestamp",
        "received",
        "type",
        "platform",
        "level",
        "sdk",
        "modules",
        "debug_meta",
        "release",
        "dist",
        "environment",
        "measurements",
        "_meta",
    }
)
_CODE_LINES: Final = ("pre_context", "post_context")
_LOG_PARAMETER: Final = "sentry.message.parameter."


def redact_sentry_event(redactor: Redactor, event: dict[str, Any]) -> dict[str, Any]:
    """Return a redacted copy of a Sentry error or transaction *event*.

    Everything user-controlled goes through `Redactor.redact` (message, logentry,
    exception values, frame locals by name and value, request, breadcrumbs, tags, contexts,
    user, extra, spans, transaction). Sentry's structural fields are kept as they are, and
    frames' source lines only lose what matches a credential shape (never ``name=value``
    pairs: ``password = request.json["password"]`` stays readable). Request cookies go
    whole (any cookie may be a session), also with *send_pii*. Without *send_pii*, the
    user's e-mail and IP and the request's ``REMOTE_ADDR`` are dropped.
    """
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key in _SENTRY_STRUCTURE:
            out[key] = value
        elif key in ("exception", "threads"):
            out[key] = _exceptions(redactor, value)
        elif key == "stacktrace":
            out[key] = _stacktrace(redactor, value)
        elif key == "logentry":
            out[key] = _logentry(redactor, value)
        else:
            out[key] = redactor.redact(value)
    if not redactor.send_pii:
        _drop(out, "user", ("email", "ip_address"))
        request = out.get("request")
        if isinstance(request, dict):
            out["request"] = request = dict(request)
            _drop(request, "env", ("REMOTE_ADDR",))
    return out


def redact_breadcrumb(redactor: Redactor, crumb: dict[str, Any]) -> dict[str, Any]:
    """Return a redacted copy of a Sentry breadcrumb (message, data, category...)."""
    redacted = redactor.redact(crumb)
    return redacted if isinstance(redacted, dict) else {}


def redact_sentry_log(redactor: Redactor, log: dict[str, Any]) -> dict[str, Any]:
    """Return a redacted copy of a Sentry log: its ``body`` and ``attributes``.

    Attributes may be plain values or ``{"value": ..., "type": ...}``; a sensitive
    attribute keeps its shape with its value replaced. A positional message parameter
    (``sentry.message.parameter.0``) is redacted when the body shows it only inside
    something redacted, like `redact_sentry_event` does for ``logentry.params``.
    """
    out = dict(log)
    body = out.get("body")
    shown = redactor.redact(body)
    if "body" in out:
        out["body"] = shown
    attributes = out.get("attributes")
    if isinstance(attributes, Mapping):
        out["attributes"] = {
            name: _attribute(redactor, name, attr) for name, attr in attributes.items()
        }
        if isinstance(body, str) and shown is not body:
            for name, attr in attributes.items():
                if str(name).startswith(_LOG_PARAMETER) and _hidden(_plain(attr), body, shown):
                    out["attributes"][name] = _attribute(redactor, "password", attr)
    return out


def _plain(attr: Any) -> Any:
    typed = isinstance(attr, Mapping) and "value" in attr and "type" in attr
    return attr["value"] if typed else attr


def _hidden(param: Any, formatted: str, shown: str) -> bool:
    # A parameter with no key to judge it by is a secret when the formatted message
    # shows it only inside something that was redacted ("token=%s").
    if not isinstance(param, str | int | float):
        return False
    text = str(param)
    return bool(text) and text in formatted and text not in shown


def _attribute(redactor: Redactor, name: Any, attr: Any) -> Any:
    typed = isinstance(attr, Mapping) and "value" in attr and "type" in attr
    value = _plain(attr)
    new = redactor.redact({name: value})
    new_value = next(iter(new.values())) if isinstance(new, dict) else REDACTED
    if not typed:
        return new_value
    if new_value is value:
        return attr
    return {
        **attr,
        "value": new_value,
        "type": "string" if isinstance(new_value, str) else attr["type"],
    }


def _logentry(redactor: Redactor, entry: Any) -> Any:
    redacted = redactor.redact(entry)
    params = entry.get("params") if isinstance(entry, Mapping) else None
    if not isinstance(params, list | tuple) or not isinstance(redacted, dict):
        return redacted
    formatted = entry.get("formatted")
    if not isinstance(formatted, str):
        try:
            formatted = str(entry.get("message")) % tuple(params)
        except Exception:  # a message that is not a %-format: nothing to compare with
            return redacted
    shown = redactor.redact_text(formatted)
    hidden = [_hidden(p, formatted, shown) for p in params]
    if any(hidden):
        redacted = dict(redacted)
        redacted["params"] = [
            REDACTED if hide else param
            for hide, param in zip(hidden, redactor.redact(list(params)), strict=True)
        ]
    return redacted


def _exceptions(redactor: Redactor, container: Any) -> Any:
    values = container.get("values") if isinstance(container, Mapping) else None
    if not isinstance(values, list):
        return redactor.redact(container)
    out = dict(container)
    out["values"] = [_exception(redactor, v) for v in values]
    return out


def _exception(redactor: Redactor, exc: Any) -> Any:
    if not isinstance(exc, Mapping):
        return redactor.redact(exc)
    out = {}
    for key, value in exc.items():
        if key == "stacktrace":
            out[key] = _stacktrace(redactor, value)
        elif key in ("type", "module", "id", "thread_id", "current", "crashed", "main"):
            out[key] = value
        else:
            out[key] = redactor.redact(value)
    return out


def _stacktrace(redactor: Redactor, stacktrace: Any) -> Any:
    frames = stacktrace.get("frames") if isinstance(stacktrace, Mapping) else None
    if not isinstance(frames, list):
        return redactor.redact(stacktrace)
    out = dict(stacktrace)
    out["frames"] = [_frame(redactor, f) for f in frames]
    return out


def _frame(redactor: Redactor, frame: Any) -> Any:
    if not isinstance(frame, Mapping):
        return redactor.redact(frame)
    out = dict(frame)
    if "vars" in out:
        out["vars"] = redactor.redact(out["vars"])
    line = out.get("context_line")
    if isinstance(line, str):
        out["context_line"] = redactor._text(line, code=True)
    for key in _CODE_LINES:
        lines = out.get(key)
        if isinstance(lines, list):
            out[key] = [redactor._text(s, code=True) if isinstance(s, str) else s for s in lines]
    return out


def _drop(parent: dict[str, Any], name: str, keys: tuple[str, ...]) -> None:
    # Copies rather than mutates: the redacted event may share objects with the original.
    mapping = parent.get(name)
    if isinstance(mapping, Mapping):
        parent[name] = {k: v for k, v in mapping.items() if k not in keys}
