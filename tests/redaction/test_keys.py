"""Key rules: secret words, measures, labels, PII keys, values under them."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from mina.redaction import REDACTED, Redactor

MUST_REDACT_KEYS = [
    "password",
    "Password",
    "PASSWORD",
    "passwd",
    "pwd",
    "pw",
    "mysql_pwd",
    "db_pass",
    "db.password",
    "user[password]",
    "new_password2",
    "passphrase",
    "secret",
    "client_secret",
    "clientSecret",
    "AWS_SECRET_ACCESS_KEY",
    "token",
    "access_token",
    "accessToken",
    "refresh_token",
    "refreshToken",
    "id_token",
    "x-auth-token",
    "X-Auth-Token",
    "XSRF-TOKEN",
    "csrf",
    "csrftoken",
    "csrf_token",
    "_csrf",
    "xsrf",
    "api_key",
    "apikey",
    "api-key",
    "apiKey",
    "X-Api-Key",
    "x_api_key",
    "APIKey",
    "auth",
    "authorization",
    "Authorization",
    "HTTP_AUTHORIZATION",
    "proxy-authorization",
    "credential",
    "credentials",
    "private_key",
    "privateKey",
    "privatekey",
    "signing_key",
    "session",
    "sessionid",
    "session_id",
    "sessionId",
    "PHPSESSID",
    "connect.sid",
    "cookie",
    "Cookie",
    "cookies",
    "set-cookie",
    "Set-Cookie",
    "HTTP_COOKIE",
    "signature",
    "X-Amz-Signature",
    "sig",
    "dsn",
    "SENTRY_DSN",
    "jwt",
    "bearer",
    "otp",
    "pin",
    "meeting_pin",
    "ssn",
    "db.params",
    "db.query.parameter.0",
    "tokens",  # a list of tokens: the plural only passes with a number value
]

MUST_KEEP_KEYS = [
    "meeting_id",
    "user_id",
    "request_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "token_type",  # a label: plain words are kept (see VALUE_CASES)
    "auth_method",
    "duration_ms",
    "author",
    "authored_by",
    "authority",
    "passage",
    "compass",
    "bypass",
    "username",
    "user",
    "email",
    "status",
    "path",
    "method",
    "route",
    "level",
    "logger",
    "event",
    "timestamp",
    "key",
    "cache_key",
    "idempotency_key",
    "public_key",
    "pinned",
    "spinner",
    "signal",
    "design",
    "oauth_provider",
    "secretary",
    "db.paramstyle",
    "db.system",
]


# Measures of a secret: not sensitive keys, but only numbers (and dates) under them are kept.
MEASURE_KEYS = [
    "token_count",
    "tokenCount",
    "tokens_used",
    "max_tokens",
    "total_tokens",
    "password_length",
    "access_token_expires_at",
    "session_ttl",
    "pin_attempts",
    "password_set",
    "ip_count",
]


class TestKeys:
    @pytest.mark.parametrize("key", MUST_REDACT_KEYS)
    def test_must_redact(self, redactor: Redactor, key: str) -> None:
        """Secret keys are recognised on their words, whatever the case and separators."""
        assert redactor.is_sensitive_key(key)
        assert {key: REDACTED} == redactor.redact({key: "s3cr3t-value"})

    @pytest.mark.parametrize("key", MUST_KEEP_KEYS)
    def test_must_keep(self, redactor: Redactor, key: str) -> None:
        """Ids, metrics and words that merely contain a secret word are kept."""
        assert not redactor.is_sensitive_key(key)
        assert {key: "harmless"} == redactor.redact({key: "harmless"})

    @pytest.mark.parametrize("key", MEASURE_KEYS)
    def test_measures_keep_numbers_only(self, redactor: Redactor, key: str) -> None:
        """A measure of a secret keeps its number; a string under it is still a secret."""
        assert not redactor.is_sensitive_key(key)
        assert {key: 12} == redactor.redact({key: 12})
        assert {key: REDACTED} == redactor.redact({key: "harmless"})

    @pytest.mark.parametrize("key", ["prompt_tokens", "completion_tokens", "tokens"])
    def test_plural_tokens_is_an_amount_only_when_a_number(
        self, redactor: Redactor, key: str
    ) -> None:
        """``prompt_tokens=12`` is a count; ``tokens=[...]`` is a list of secrets."""
        assert {key: 12} == redactor.redact({key: 12})
        assert {key: REDACTED} == redactor.redact({key: ["abc", "def"]})

    def test_non_string_keys(self, redactor: Redactor) -> None:
        """Non-string keys are never sensitive and are kept."""
        assert not redactor.is_sensitive_key(3)
        assert not redactor.is_sensitive_key(None)
        assert {3: "x", (1, 2): "y"} == redactor.redact({3: "x", (1, 2): "y"})

    def test_decisions_are_cached(self, redactor: Redactor) -> None:
        """A key is classified once."""
        redactor.is_sensitive_key("api_key")
        redactor.is_sensitive_key("meeting_id")

        assert {"api_key", "meeting_id"} <= set(redactor._keys)

    def test_extra_keys_are_word_sequences(self) -> None:
        """User keys match like the built-in ones and are never exempted as metrics."""
        redactor = Redactor(extra_keys=["voice_print", "transcript"])

        assert redactor.is_sensitive_key("voicePrint")
        assert redactor.is_sensitive_key("X-Voice-Print")
        assert redactor.is_sensitive_key("transcript_size")
        assert not redactor.is_sensitive_key("voice")
        assert not redactor.is_sensitive_key("print_job")

    def test_pii_keys(self) -> None:
        """Client-address keys are redacted unless PII may be sent."""
        assert Redactor().is_sensitive_key("X-Forwarded-For")
        assert Redactor().is_sensitive_key("REMOTE_ADDR")
        assert not Redactor(send_pii=True).is_sensitive_key("X-Forwarded-For")
        assert not Redactor(send_pii=True).is_sensitive_key("ip_address")

    def test_key_holding_a_secret_is_redacted(self, redactor: Redactor) -> None:
        """A secret used as a key is redacted in the key itself."""
        token = "ghp_" + "a1B2" * 9

        assert {REDACTED: 1} == redactor.redact({token: 1})
        assert token not in redactor._keys


VALUE_CASES = [
    # (key, value, redacted?): must-keep rows ...
    ("has_password", True, False),
    ("password_set", False, False),
    ("token", None, False),
    ("password", False, False),
    ("api_key", None, False),
    ("ip_count", 3, False),
    ("pin_attempts", 2, False),
    ("password_length", 12, False),
    ("token_count", "3", False),  # a number's text
    ("max_tokens", 4096, False),
    ("prompt_tokens", 12, False),
    ("access_token_expires_at", datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), False),
    ("token_expires_at", "2026-11-29T05:00:00.123Z", False),
    ("password_changed_at", "2026-11-29", False),
    ("session_ttl", datetime.timedelta(hours=1), False),
    ("auth_method", "password", False),  # a label: its value names a method
    ("token_type", "Bearer", False),
    ("auth_provider", "google-oauth", False),
    # ... and must-redact rows.
    ("password", 1234, True),  # a numeric password
    ("pin", 1234, True),
    ("password", "True", True),  # a string is a string
    ("password_length", "hunter2", True),
    ("max_tokens", "sk-" + "Ab1" * 8, True),
    ("token_expires_at", "hunter2", True),
    ("token_count", ["a", "b"], True),
    ("session_ttl", "abc", True),
    ("ip_count", "203.0.113.7", True),
    ("token_type", "hunter2", True),
    ("auth_method", "s3cr3t!", True),
    ("tokens", "12 34", True),
]


class TestValues:
    @pytest.mark.parametrize(("key", "value", "redacted"), VALUE_CASES)
    def test_value_under_key(
        self, redactor: Redactor, key: str, value: Any, redacted: bool
    ) -> None:
        """None and booleans never go; measures keep numbers, labels plain words."""
        expected = REDACTED if redacted else value

        assert {key: expected} == redactor.redact({key: value})
        assert {"event": "x", key: expected} == redactor(None, "info", {"event": "x", key: value})

    def test_kept_values_are_still_scanned(self, redactor: Redactor) -> None:
        """A label's value that is a credential shape still goes (shapes apply everywhere)."""
        assert {"token_count": REDACTED} == redactor.redact({"token_count": "4111111111111111"})

    def test_extra_keys_are_never_measures(self) -> None:
        """User keys redact everything but None and booleans."""
        redactor = Redactor(extra_keys=["transcript"])

        assert {"transcript_size": REDACTED} == redactor.redact({"transcript_size": 3})
        assert {"transcript_set": True} == redactor.redact({"transcript_set": True})

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("token=None and secret=True", "token=None and secret=True"),
            ('{"token": null, "password": false}', '{"token": null, "password": false}'),
            ('{"password": "null"}', '{"password": "[REDACTED]"}'),  # quoted: a string
            ("password_length=12", "password_length=12"),
            ("password_length=hunter2", "password_length=[REDACTED]"),
            ("max_tokens=sk-x", "max_tokens=[REDACTED]"),
            ("token_expires_at=2026-11-29T05:00:00Z", "token_expires_at=2026-11-29T05:00:00Z"),
            ("token_expires_at=hunter2", "token_expires_at=[REDACTED]"),
            ("auth_method=password", "auth_method=password"),
            ("token_type=hunter2", "token_type=[REDACTED]"),
            ("pin_attempts=2 ip_count=3", "pin_attempts=2 ip_count=3"),
            ("password=token=abc x", "password=[REDACTED] x"),  # nested: one value
            ("a password: b token: c\nnext", "a password: [REDACTED]\nnext"),
        ],
    )
    def test_in_text(self, redactor: Redactor, text: str, expected: str) -> None:
        """Pairs in text follow the same value rules."""
        assert expected == redactor.redact_text(text)


# Mina's own word lists, pinned entry by entry: one key per entry, spelled the way code
# writes it, that no other entry makes sensitive. Written out here, not read from the lists.
OWN_SECRET_KEYS = [
    *("password", "passwd", "pwd", "pw", "db_pass", "passphrase", "passcode", "secret"),
    *("secrets", "token", "auth", "authorization", "authtoken", "accesstoken"),
    *("refreshtoken", "idtoken", "apitoken", "credential", "credentials", "creds"),
    *("api_key", "apikey", "private_key", "privatekey", "secretkey", "access_key"),
    *("signing_key", "encryption_key", "master_key", "masterKey", "AccountKey", "accountkey"),
    *("session", "sessionid", "sessid", "jsessionid", "phpsessid", "connect.sid", "cookie"),
    *("cookies", "csrf", "csrftoken", "xsrf", "xsrftoken", "signature", "sig", "dsn", "jwt"),
    *("bearer", "otp", "totp", "pin", "ssn", "symfony", "db.params", "db.query.parameter.0"),
]
OWN_PII_KEYS = [
    *("ip", "ip_address", "remote_addr", "REMOTE_ADDR", "remote_address", "REMOTE_PORT"),
    *("HTTP_X_FORWARDED_FOR", "X-Real-IP", "forwarded", "raddr", "laddr", "peername"),
    *("client_address", "client_addr", "peer_address"),
]
MEASURE_WORDS = [
    *("count", "counts", "total", "num", "len", "length", "size", "usage", "used", "limit"),
    *("limits", "max", "min", "remaining", "rate", "ttl", "age", "ms", "ns", "us", "seconds"),
    *("secs", "minutes", "hours", "days", "duration", "attempt", "attempts", "tries"),
    *("retries", "failures", "failed", "errors", "set", "enabled", "disabled", "required"),
    *("present", "exists", "valid", "timeout", "version", "index", "position", "entropy"),
    *("strength", "score"),
]
TIME_WORDS = [
    *("at", "expires", "expiry", "expiration", "expired", "until", "since", "time", "date"),
    *("issued", "created", "updated", "changed", "modified", "rotated", "last"),
]
LABEL_WORDS = [
    *("type", "types", "kind", "method", "methods", "scheme", "schemes", "provider"),
    *("algorithm", "alg", "format", "mode", "strategy", "backend", "status", "source"),
    *("name", "names"),
]
ID_WORDS = [
    *("id", "ids", "uid", "pk", "seq", "offset", "ts", "time", "timestamp", "epoch"),
    *("ns", "ms", "us", "at", "created", "updated", "modified"),
]
CARD = "4111111111111111"


class TestOwnWords:
    @pytest.mark.parametrize("key", OWN_SECRET_KEYS)
    def test_secret_words(self, redactor: Redactor, key: str) -> None:
        """Each of Mina's secret words makes a key sensitive on its own."""
        assert {key: REDACTED} == redactor.redact({key: "s3cr3t-value"})
        assert f"{key}={REDACTED}" == redactor.redact_text(f"{key}=s3cr3t-value")

    @pytest.mark.parametrize("key", OWN_PII_KEYS)
    def test_pii_words(self, key: str) -> None:
        """Each client-address word hides its value unless PII may be sent."""
        assert {key: REDACTED} == Redactor().redact({key: "198.51.100.7"})
        assert {key: "198.51.100.7"} == Redactor(send_pii=True).redact({key: "198.51.100.7"})

    @pytest.mark.parametrize("key", OWN_PII_KEYS)
    @pytest.mark.parametrize(
        "address", ["127.0.0.1", "::1", "0.0.0.0", "127.0.0.1:8000", "[::1]:5000"]
    )
    def test_own_addresses_stay_under_pii_words(self, key: str, address: str) -> None:
        """The machine's own address identifies nobody: kept under a client-address key."""
        assert {key: address} == Redactor().redact({key: address})
        assert f"{key}={address} ok" == Redactor().redact_text(f"{key}={address} ok")

    def test_own_address_as_a_socket_pair(self, redactor: Redactor) -> None:
        """A peer's (host, port) pair is kept only for the machine's own address."""
        assert {"raddr": ("127.0.0.1", 5000)} == redactor.redact({"raddr": ("127.0.0.1", 5000)})
        assert {"raddr": REDACTED} == redactor.redact({"raddr": ("127.0.0.7", 5000)})
        assert {"raddr": REDACTED} == redactor.redact({"raddr": ("127.0.0.1", "x")})

    @pytest.mark.parametrize("word", MEASURE_WORDS + TIME_WORDS)
    def test_measure_words(self, redactor: Redactor, word: str) -> None:
        """A measure of a secret keeps its number and still hides any other text."""
        key = f"api_key_{word}"

        assert {key: 7} == redactor.redact({key: 7})
        assert {key: REDACTED} == redactor.redact({key: "hunter2"})

    @pytest.mark.parametrize("word", TIME_WORDS)
    def test_time_words_keep_timestamps(self, redactor: Redactor, word: str) -> None:
        """A time of a secret keeps an ISO timestamp; other measures do not."""
        stamp = "2026-11-29T05:00:00Z"

        assert {f"token_{word}": stamp} == redactor.redact({f"token_{word}": stamp})
        assert {"token_count": REDACTED} == redactor.redact({"token_count": stamp})

    @pytest.mark.parametrize("first", ["max", "min", "total", "num", "n"])
    def test_metric_first_words(self, redactor: Redactor, first: str) -> None:
        """``max_tokens=4096`` is an amount, not a token."""
        key = f"{first}_token"

        assert {key: 4096} == redactor.redact({key: 4096})
        assert {key: REDACTED} == redactor.redact({key: "hunter2"})

    @pytest.mark.parametrize("word", LABEL_WORDS)
    def test_label_words(self, redactor: Redactor, word: str) -> None:
        """A label of a secret keeps a plain word, never one with digits or symbols."""
        key = f"token_{word}"

        assert {key: "bearer"} == redactor.redact({key: "bearer"})
        assert {key: REDACTED} == redactor.redact({key: "hunter2"})

    @pytest.mark.parametrize("word", ID_WORDS)
    def test_id_words_hold_digits_that_are_not_cards(self, redactor: Redactor, word: str) -> None:
        """An id or time key's digits are an id or an epoch; a number key's are a card."""
        assert {f"row_{word}": CARD} == redactor.redact({f"row_{word}": CARD})
        assert {"row_number": REDACTED} == redactor.redact({"row_number": CARD})


class TestNotKeys:
    @pytest.mark.parametrize(
        "name",
        [
            "TokenExpiredError",
            "mina.auth.InvalidPasswordError",
            "SessionTimeoutException",
            "AuthWarning",
            "jwt.exceptions.ExpiredSignatureError",
        ],
    )
    def test_exception_class_names(self, redactor: Redactor, name: str) -> None:
        """An exception's class name holding a secret word names a type: its message stays."""
        line = f"{name}: expired at 2026-12-01T10:00:00Z for user 42"

        assert line == redactor.redact_text(line)
        assert {name: "expired for user 42"} == redactor.redact({name: "expired for user 42"})

    @pytest.mark.parametrize("name", ["AuthToken", "X-Auth-Token", "token_error", "SessionId"])
    def test_other_names_with_secret_words_are_keys(self, redactor: Redactor, name: str) -> None:
        """Only a class name ending like an exception's is exempt."""
        assert f"{name}: {REDACTED}" == redactor.redact_text(f"{name}: hunter2-value")

    def test_a_secret_in_the_message_still_goes(self, redactor: Redactor) -> None:
        """The message is text like any other: shapes and pairs in it are found."""
        line = "TokenExpiredError: token=abc123 for user 42"

        assert f"TokenExpiredError: token={REDACTED} for user 42" == redactor.redact_text(line)

    @pytest.mark.parametrize(
        "header",
        [
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "X-Forwarded-Port",
            "X-Forwarded-Prefix",
            "HTTP_X_FORWARDED_PROTO",
        ],
    )
    def test_proxy_headers_stay(self, redactor: Redactor, header: str) -> None:
        """A proxy's protocol, host and port headers name no client."""
        assert {header: "https"} == redactor.redact({header: "https"})
        assert f"{header}: https" == redactor.redact_text(f"{header}: https")

    @pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded", "HTTP_FORWARDED"])
    def test_client_address_headers_follow_pii(self, header: str) -> None:
        """The headers that carry the client's address are PII."""
        value = "for=198.51.100.7;proto=https"

        assert {header: REDACTED} == Redactor().redact({header: value})
        assert {header: value} == Redactor(send_pii=True).redact({header: value})

    def test_own_address_after_a_flag(self, redactor: Redactor) -> None:
        """A command line's client-address flag keeps the machine's own address only."""
        argv = ["gunicorn", "--ip", "127.0.0.1", "--peer-address", "198.51.100.7"]

        assert ["gunicorn", "--ip", "127.0.0.1", "--peer-address", REDACTED] == (
            redactor.redact(argv)
        )
        assert f"run --ip 127.0.0.1 --peer-address {REDACTED}" == redactor.redact_text(
            "run --ip 127.0.0.1 --peer-address 198.51.100.7"
        )
