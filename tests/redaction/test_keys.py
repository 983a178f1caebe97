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
