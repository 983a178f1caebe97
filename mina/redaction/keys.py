"""Key rules: which keys hold secrets, and which values under them can stay.

A key is split into words (on ``_ - .``, spaces, brackets and camelCase, so
``accessToken``, ``X-Api-Key``, ``AWS_SECRET_ACCESS_KEY`` and ``db.password`` all work) and is
sensitive when it contains one of the secret word sequences of `SECRET_KEYS` (``password``,
``token``, ``api key``, ``private key``, ...). Words, not substrings: ``author`` is not
``auth`` and ``passage`` is not ``pass``. What happens to the value then:

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
- ``extra_keys`` are never measures or labels; PII keys (`PII_KEYS`: ``ip``,
  ``remote_addr``...) are.
- Under a harmless key whose last word names an id or a time (``user_id``, ``ids``, ``ts``,
  ``time``, ``*_ns``, ``*_ms``, ``created``...), a bare digit string is an id or an epoch and
  is not checked for card numbers.

To add a secret word, add it to `SECRET_KEYS` (and a key using it to the tests' table).
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["PII_KEYS", "SECRET_KEYS"]

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

#: Secret word sequences: a key containing one, as consecutive words, is sensitive. Single
#: words that are commonly written as one word ("apikey", "sessionid") are listed as such.
#: Covers every word of Sentry's default denylist (a test checks it on each SDK upgrade).
SECRET_KEYS: Final = (
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
    "account key",  # Azure storage: AccountKey=...; in connection strings
    "accountkey",
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
#: Client-address word sequences: sent only when PII may be sent. Loopback addresses in
#: text are kept, but not under these keys: ``raddr`` in a socket's repr is the client's.
PII_KEYS: Final = (
    *("ip", "ip address", "remote addr", "remote address", "remote port"),
    *("x forwarded for", "x real ip"),
    *("raddr", "laddr", "peername", "client address", "client addr", "peer address"),
)

#: Client-address words that count only as a key's last word: ``Forwarded`` (RFC 7239,
#: ``for=<client>``) and ``HTTP_FORWARDED`` are a client's; ``X-Forwarded-Proto``,
#: ``-Host``, ``-Port`` and ``-Prefix`` name a proxy's protocol and host, and stay.
PII_LAST_WORDS: Final = frozenset({"forwarded"})
# A class name ending like an exception's ("TokenExpiredError", "mod.SessionError"): the
# name of a type, never a key, though it holds a secret word ("TokenExpiredError: expired
# at ..." is an exception's message, not a token).
_CLASS_NAME: Final = re.compile(
    r"(?:[A-Za-z_]\w*\.)*[A-Z][A-Za-z0-9]*[a-z0-9](?:Error|Exception|Warning|Exit|Interrupt)"
)
# Addresses that identify nobody, under a client-address key too: the machine itself
# ("ip=127.0.0.1" when a client on the same host calls) and "any" ("0.0.0.0"), with or
# without a port ("127.0.0.1:5000", "[::1]:80", "('127.0.0.1', 5000)").
_OWN_ADDRESS: Final = re.compile(
    r"[\[(]?'?(?:127\.0\.0\.1|::1|0\.0\.0\.0|::)'?(?:\]?:\d{1,5}|,[ ]?\d{1,5})?[\])]?"
)

_TIME_WORDS: Final = frozenset(
    {"at", "expires", "expiry", "expiration", "expired", "until", "since", "time", "date"}
    | {"issued", "created", "updated", "changed", "modified", "rotated", "last"}
)
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
        *("name", "names"),  # SharedAccessKeyName=RootManageSharedAccessKey
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
KEEP: Final = 0
SECRET: Final = 1  # every value but None and booleans is redacted
COUNT_OK: Final = 2  # the plural "tokens" alone: secret, unless the value is a number
DIRTY: Final = 4  # the key's own text contains a secret: never cached
MEASURE: Final = 8  # a measure of a secret (see _MEASURE_WORDS)
TIME: Final = 16  # a measure that is a time: ISO timestamps are kept too
LABEL: Final = 32  # a label of a secret (see _LABEL_WORDS)
DIGITS_OK: Final = 64  # a harmless id or time key: bare digit strings are not card numbers
# A harmless key naming a vendor or holding a weak secret word ("ASANA_CLIENT_ID",
# "monkey_key"): a value of the vendor's format, or a random one, is redacted
# (mina.redaction.catalogue); any other value stays.
NAMED: Final = 128
PII: Final = 256  # a client-address key: the machine's own addresses are kept
JUDGED: Final = SECRET | COUNT_OK | MEASURE | LABEL  # the value decides
PASS: Final = frozenset({KEEP, DIGITS_OK})  # the fast paths' harmless states

# Non-text values a measure key may hold (numbers are checked first).
_MEASURES: Final = (
    int,
    float,
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
)
_NUMBER: Final = re.compile(r"[+-]?\d{1,20}(?:\.\d{1,20})?")
_TIMESTAMP: Final = re.compile(
    r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)?"
)
_LABEL_VALUE: Final = re.compile(r"[A-Za-z]+(?:[ _.\-][A-Za-z]+)*")

Phrases = tuple[tuple[str, ...], ...]


def words(key: str) -> tuple[str, ...]:
    """Return the lower-cased words of *key* (``"X-Api-Key"``: ``("x", "api", "key")``)."""
    return tuple(w.lower() for w in _WORD.findall(key))


def phrases(names: Iterable[str]) -> Phrases:
    """Return the word sequences of *names*, without duplicates or empty ones."""
    return tuple(p for p in {words(n) for n in names} if p)


def find(key_words: tuple[str, ...], sequences: Phrases) -> int:
    """Return the index after the last match of any of *sequences* in *key_words*, or -1."""
    end = -1
    for phrase in sequences:
        size = len(phrase)
        for i in range(len(key_words) - size + 1):
            if key_words[i : i + size] == phrase:
                end = max(end, i + size)
    return end


BUILTIN_KEYS: Final = phrases(SECRET_KEYS)
PII_PHRASES: Final = phrases(PII_KEYS)
# Every built-in phrase but the plural "tokens" (see the key rule).
_SINGULAR_KEYS: Final = tuple(p for p in BUILTIN_KEYS if p != ("tokens",))


def class_name(key: str) -> bool:
    """Whether *key* is an exception class's name (``TokenExpiredError``), not a key."""
    return len(key) <= 200 and _CLASS_NAME.fullmatch(key) is not None


def classify(key_words: tuple[str, ...], extra_keys: Phrases, pii_keys: Phrases) -> int:
    """Return the state (`SECRET`, `MEASURE`, ...) of a key made of *key_words*."""
    if not key_words:
        return KEEP
    if find(key_words, extra_keys) >= 0:
        return SECRET
    pii = find(key_words, pii_keys)
    if pii_keys and key_words[-1] in PII_LAST_WORDS:
        pii = len(key_words)
    secret = find(key_words, BUILTIN_KEYS)
    end = max(pii, secret)
    if end < 0:
        return DIGITS_OK if key_words[-1] in _DIGITS_KEY_WORDS else KEEP
    tail = key_words[end:]
    if key_words[0] in _METRIC_FIRST or not _MEASURE_WORDS.isdisjoint(tail):
        return MEASURE | (TIME if not _TIME_WORDS.isdisjoint(tail) else 0)
    if not _LABEL_WORDS.isdisjoint(tail):
        return LABEL
    if secret < 0:
        return SECRET | PII
    if pii < 0 and find(key_words, _SINGULAR_KEYS) < 0:
        return COUNT_OK  # only the plural "tokens": maybe an amount
    return SECRET


def keeps(state: int, value: Any) -> bool:
    """Return whether *value*, under a key in *state* (`JUDGED`), cannot be a secret."""
    if type(value) is bool or value is None:
        return True  # "has_password": True, "token": None
    if state & PII and isinstance(value, tuple | list) and value:
        value = str(value[0]) if len(value) == 2 and type(value[1]) is int else None
        return value is not None and own_address(value)  # ("127.0.0.1", 5000)
    if state & SECRET:
        return kept_text(state, value) if state & PII and isinstance(value, str) else False
    if isinstance(value, _MEASURES):
        return True
    if isinstance(value, str):
        return kept_text(state, value)
    return False


def kept_text(state: int, text: str) -> bool:
    """Return whether *text*, the value of a measure or label key, cannot be a secret."""
    if state & PII and own_address(text):
        return True
    if state & SECRET or len(text) > 40:
        return False
    if _NUMBER.fullmatch(text):
        return True
    if state & TIME and _TIMESTAMP.fullmatch(text):
        return True
    return bool(state & LABEL) and _LABEL_VALUE.fullmatch(text) is not None


def own_address(text: str) -> bool:
    """Whether *text* is the machine's own address or "any" (``127.0.0.1``, ``[::1]:80``)."""
    return len(text) <= 32 and _OWN_ADDRESS.fullmatch(text.strip("'\"")) is not None
