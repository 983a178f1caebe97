"""Tests for mina.redaction: the one redactor in front of stdout and Sentry."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import re
import secrets
import string
import uuid
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import sentry_sdk
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sentry_sdk._types import AnnotatedValue

from mina.redaction import (
    REDACTED,
    Redactor,
    redact_breadcrumb,
    redact_sentry_event,
    redact_sentry_log,
)
from mina.testing import SentryIngest

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


@pytest.fixture(name="redactor")
def _redactor() -> Redactor:
    return Redactor()


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


JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\n"
    "Z1BjP5CE/Wm/Rr500P\n"
    "-----END RSA PRIVATE KEY-----"
)

TEXT_CASES = [
    # (input, expected): value patterns and their near misses.
    ("Authorization: Bearer abc.def-123_xyz", "Authorization: Bearer [REDACTED]"),
    ("sent bearer AbC123xyz987 upstream", "sent bearer [REDACTED] upstream"),
    ("Basic dXNlcjpodW50ZXIy", "Basic [REDACTED]"),
    ("basic usage of the Bearer scheme", "basic usage of the Bearer scheme"),
    (f"token {JWT} expired", "token [REDACTED] expired"),
    ("version eyJ is not a jwt", "version eyJ is not a jwt"),
    (
        f"key:\n{PEM}\ndone",
        "key:\n-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----\ndone",
    ),
    ("-----BEGIN PRIVATE KEY-----\nMIIcut", "-----BEGIN PRIVATE KEY-----[REDACTED]"),
    ("-----BEGIN PUBLIC KEY-----\nMIIpub", "-----BEGIN PUBLIC KEY-----\nMIIpub"),
    (
        "postgres://mina:hunter2@db.internal:5432/mina",
        "postgres://mina:[REDACTED]@db.internal:5432/mina",
    ),
    ("redis://:p@ss@cache/0", "redis://:[REDACTED]@cache/0"),
    ("https://example.com/a:b@c", "https://example.com/a:b@c"),
    (
        "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/123",
        "https://[REDACTED]@o1.ingest.sentry.io/123",
    ),
    ("GET /cb?token=abc123&x=1", "GET /cb?token=[REDACTED]&x=1"),
    (
        "/cb?access_token=abc&api_key=k&page=2",
        "/cb?access_token=[REDACTED]&api_key=[REDACTED]&page=2",
    ),
    ("/cb?token_count=3&author=ann", "/cb?token_count=3&author=ann"),
    ("retry password=hunter2 now", "retry password=[REDACTED] now"),
    ("session=abc; theme=dark", "session=[REDACTED]; theme=dark"),
    (
        '{"password": "hunter2", "pin": 1234, "user": "bob"}',
        '{"password": "[REDACTED]", "pin": [REDACTED], "user": "bob"}',
    ),
    ("Creds(secret='s3', user='bob')", "Creds(secret='[REDACTED]', user='bob')"),
    ("X-Api-Key: k-123 456", "X-Api-Key: [REDACTED]"),
    ("password: hunter2", "password: [REDACTED]"),
    ('password = request.json["password"]', 'password = request.json["password"]'),
    (r"body {\"password\": \"p w\"}", r"body {\"password\": \"[REDACTED]\"}"),
    ("password='cut-off\nnext", "password='[REDACTED]\nnext"),
    ("x" * 80 + "_token=abc", "x" * 80 + "_token=[REDACTED]"),
    ("login(password=hunter2) failed", "login(password=[REDACTED]) failed"),
    ("prompt_tokens=12", "prompt_tokens=12"),
    (
        "login with token=%s and password=%(pw)s, key={api_key}",
        "login with token=%s and password=%(pw)s, key={api_key}",
    ),
    ("pay 4111 1111 1111 1111 now", "pay [REDACTED] now"),
    ("pay 4111-1111-1111-1111 now", "pay [REDACTED] now"),
    ("pay 4111111111111111 now", "pay [REDACTED] now"),
    ("order 4111111111111112 now", "order 4111111111111112 now"),
    ("id 1234567890123", "id 1234567890123"),
    ("aws AKIAIOSFODNN7EXAMPLE ok", "aws [REDACTED] ok"),
    ("aws ASIAIOSFODNN7EXAMPLE ok", "aws [REDACTED] ok"),
    ("AKIAshort", "AKIAshort"),
    ("gh ghp_" + "a" * 36, "gh [REDACTED]"),
    ("gh gho_" + "B" * 36, "gh [REDACTED]"),
    ("gh github_pat_" + "1a_" * 10, "gh [REDACTED]"),
    ("ghp_short", "ghp_short"),
    ("slack xoxb-123456-abcdef-XYZ", "slack [REDACTED]"),
    ("stripe sk_live_" + "a1" * 10, "stripe [REDACTED]"),
    ("stripe rk_test_" + "a1" * 10, "stripe [REDACTED]"),
    ("stripe pk_live_" + "a1" * 10, "stripe pk_live_" + "a1" * 10),
    ("openai sk-" + "Ab1" * 16, "openai [REDACTED]"),
    ("openai sk-proj-" + "Ab1_" * 10, "openai [REDACTED]"),
    (
        "task-queue-worker-abcdefghijklmnopqrstuvwxyz",
        "task-queue-worker-abcdefghijklmnopqrstuvwxyz",
    ),
    ("meeting.created", "meeting.created"),
    ("2026-11-29T04:59:07.123456Z", "2026-11-29T04:59:07.123456Z"),
    ("", ""),
]


class TestText:
    @pytest.mark.parametrize(("text", "expected"), TEXT_CASES)
    def test_patterns(self, redactor: Redactor, text: str, expected: str) -> None:
        """Secrets are replaced, the surrounding text is kept."""
        assert expected == redactor.redact_text(text)

    def test_unchanged_is_the_same_object(self, redactor: Redactor) -> None:
        """Copy-on-write: clean text comes back as itself."""
        text = "".join(["meeting", ".created"])

        assert text is redactor.redact_text(text)
        assert text is redactor.redact_text(text)  # cached

    def test_idempotent(self, redactor: Redactor) -> None:
        """Redacting twice is redacting once."""
        for text, _ in TEXT_CASES:
            once = redactor.redact_text(text)
            assert once == redactor.redact_text(once)

    @pytest.mark.parametrize(
        "text",
        [
            "mail alice@example.com now",
            "from 203.0.113.7 now",
            "from 2001:db8::1 now",
            "from ::ffff:203.0.113.7 now",
        ],
    )
    def test_pii_in_text(self, text: str) -> None:
        """E-mail and client IP addresses are redacted unless PII may be sent."""
        prefix, _, suffix = text.split(" ")

        assert f"{prefix} {REDACTED} {suffix}" == Redactor().redact_text(text)
        assert text == Redactor(send_pii=True).redact_text(text)

    @pytest.mark.parametrize(
        "text",
        ["listening on 127.0.0.1:5000", "bind 0.0.0.0", "bind ::1", "version 1.2.3", "at 04:59:07"],
    )
    def test_not_client_addresses(self, redactor: Redactor, text: str) -> None:
        """Loopback, unspecified addresses, versions and times are kept."""
        assert text == redactor.redact_text(text)

    def test_url_password_keeps_host_without_pii(self, redactor: Redactor) -> None:
        """The host after a URL password is not mistaken for an e-mail address."""
        assert "smtp://bob:[REDACTED]@mail.example.com" == redactor.redact_text(
            "smtp://bob:pw@mail.example.com"
        )

    def test_extra_patterns(self) -> None:
        """User patterns: whole match, or group 1 when the pattern has groups."""
        redactor = Redactor(extra_patterns=[r"MINA-\d{6}", re.compile(r"ticket #(\w+)")])

        assert f"ref {REDACTED}, ticket #{REDACTED}." == redactor.redact_text(
            "ref MINA-123456, ticket #abc42."
        )

    def test_invalid_extra_pattern_raises_value_error(self) -> None:
        """A bad pattern fails at construction (configuration time), as re.error."""
        with pytest.raises(re.error):
            Redactor(extra_patterns=["("])

    def test_huge_text_is_truncated(self) -> None:
        """Only max_text characters are scanned; the rest is dropped and counted."""
        redactor = Redactor(max_text=100)
        text = "password=hunter2 " + "word " * 100

        redacted = redactor.redact_text(text)

        head, marker = redacted.split("...")
        assert head.startswith("password=[REDACTED] word")
        assert text.startswith(head.replace(REDACTED, "hunter2"))
        assert f"[TRUNCATED {len(text) - len(head) + len(REDACTED) - 7} chars]" == marker

    def test_truncation_drops_a_cut_token(self) -> None:
        """A token cut at the limit is dropped entirely, not half-leaked."""
        redactor = Redactor(max_text=30)
        token = "ghp_" + "Z" * 36

        redacted = redactor.redact_text("see " + token)

        assert "ZZZ" not in redacted
        assert redacted.startswith("see ...[TRUNCATED")


# -- review fixes: Mina tokens, harmless values, argv flags, card numbers -------------------

# Fixed examples of mina.db's TOKEN_PREFIX + secrets.token_urlsafe(32) (43 characters).
MINA_TOKEN = "mina_" + "Qx3-rT9_kLmN0pZ" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4"
MINA_TOKEN_2 = "mina_" + "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-9"  # one digit is enough

MINA_TOKEN_CASES = [
    # (input, expected): must-redact rows, then must-keep rows.
    (MINA_TOKEN, REDACTED),
    (f"created {MINA_TOKEN} for bob", f"created {REDACTED} for bob"),
    (f"created {MINA_TOKEN_2}.", f"created {REDACTED}."),
    (f"Authorization: Bearer {MINA_TOKEN}", f"Authorization: Bearer {REDACTED}"),
    (f"req-{MINA_TOKEN}", f"req-{REDACTED}"),  # glued to an X-Request-ID
    (f"{MINA_TOKEN}-extra", REDACTED),  # glued to more text
    (f'{{"value": "{MINA_TOKEN}"}}', f'{{"value": "{REDACTED}"}}'),
    (f"GET /api/tokens/{MINA_TOKEN}/revoke", f"GET /api/tokens/{REDACTED}/revoke"),
    ("mina_api", "mina_api"),
    ("mina_database is locked", "mina_database is locked"),
    ("MINA_DATABASE=var/mina.sqlite3", "MINA_DATABASE=var/mina.sqlite3"),
    ("mina_" + "Ab1" * 14, "mina_" + "Ab1" * 14),  # 42 characters: not a token
    (
        "queue mina_transcription_worker_high_priority_retry_dead_letters",
        "queue mina_transcription_worker_high_priority_retry_dead_letters",
    ),  # a long snake_case name, no capital and no digit
    ("xmina_" + "Ab1" * 15, "xmina_" + "Ab1" * 15),  # another word
]


class TestMinaTokens:
    @pytest.mark.parametrize(("text", "expected"), MINA_TOKEN_CASES)
    def test_shape(self, redactor: Redactor, text: str, expected: str) -> None:
        """A bare Mina API token is redacted anywhere; words starting with mina_ are kept."""
        assert expected == redactor.redact_text(text)
        assert (expected != text) is redactor.changes(text)

    @settings(max_examples=200, deadline=None)
    @given(raw=st.binary(min_size=32, max_size=32))
    def test_every_issued_token_is_redacted(self, raw: bytes) -> None:
        """Whatever token_urlsafe(32) returns (bar an all-lowercase one, p ~ 1e-15) goes."""
        body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        assume(not re.fullmatch(r"[a-z_\-]+", body))
        token = "mina_" + body
        redactor = Redactor()

        assert 43 == len(body)
        assert f"x {REDACTED} y" == redactor.redact_text(f"x {token} y")
        assert redactor.changes(f"rid-{token}")

    def test_real_token(self, redactor: Redactor) -> None:
        """A token made the way mina.db makes it."""
        from mina.db import TOKEN_PREFIX

        token = TOKEN_PREFIX + secrets.token_urlsafe(32)

        assert redactor.changes(token)
        assert REDACTED == redactor.redact_text(token)

    @pytest.mark.parametrize(
        "request_id",
        ["r-1", str(uuid.UUID(int=7)), "9ec79c33ec9942ab8353589fcb2e04dc", "mina_api-42"],
    )
    def test_changes_is_false_for_harmless_text(self, redactor: Redactor, request_id: str) -> None:
        """changes() is what a caller refusing a secret-bearing X-Request-ID asks."""
        assert not redactor.changes(request_id)
        assert redactor.changes(f"{request_id}-Bearer-{'x' * 20} password=hunter2")


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


ARGV_CASES = [
    # (argv, expected): must-redact rows, then must-keep rows.
    (["mina", "--password", "hunter2"], ["mina", "--password", REDACTED]),
    (["mina", "--token", "t0k", "--port", "5000"], ["mina", "--token", REDACTED, "--port", "5000"]),
    (["--api-key", "k", "serve"], ["--api-key", REDACTED, "serve"]),
    (["--db-password", "pw"], ["--db-password", REDACTED]),
    (["-password", "pw"], ["-password", REDACTED]),  # Java-style
    (["--client_secret", "-starts-with-a-dash"], ["--client_secret", REDACTED]),
    (["--password=hunter2"], [f"--password={REDACTED}"]),
    (["'--token'", "'abc'"], ["'--token'", REDACTED]),  # Sentry's reprs of frame locals
    (("--token", "abc"), ("--token", REDACTED)),
    (["--max-tokens", "100"], ["--max-tokens", "100"]),
    (["--max-tokens", "sk-x"], ["--max-tokens", REDACTED]),
    (["--auth-method", "password"], ["--auth-method", "password"]),
    (["--token", "--verbose"], ["--token", "--verbose"]),  # a switch, then another flag
    (["--no-auth", "serve"], ["--no-auth", "serve"]),
    (["--port", "5000", "--author", "ann"], ["--port", "5000", "--author", "ann"]),
    (["--password"], ["--password"]),
    (["-", "--", "x"], ["-", "--", "x"]),
]

FLAG_TEXT_CASES = [
    (
        "mina serve --password hunter2 --port 5000",
        f"mina serve --password {REDACTED} --port 5000",
    ),
    ("run --token 'p w' now", f"run --token '{REDACTED}' now"),
    ('run --api-key "k 1"', f'run --api-key "{REDACTED}"'),
    ("run --api-key\tabc", f"run --api-key\t{REDACTED}"),
    ("['mina', '--password', 'hunter2']", f"['mina', '--password', '{REDACTED}']"),
    ('["mina", "--token", "abc"]', f'["mina", "--token", "{REDACTED}"]'),
    ("run --password %s", "run --password %s"),
    ("run --token {token}", "run --token {token}"),
    ("run --password=hunter2 -token=abc", f"run --password={REDACTED} -token={REDACTED}"),
    ("run --port=5000 --author=ann", "run --port=5000 --author=ann"),
    ("run --token --verbose", "run --token --verbose"),
    ("run --max-tokens 100", "run --max-tokens 100"),
    ("run --no-auth now", "run --no-auth now"),
    ("run --port 5000 --author ann", "run --port 5000 --author ann"),
    ("x--password y", "x--password y"),
    ("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----"),
]


class TestArgv:
    @pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
    def test_lists(self, redactor: Redactor, argv: Any, expected: Any) -> None:
        """The item after a sensitive --flag in a list of strings is its value."""
        assert expected == redactor.redact(argv)

    def test_unchanged_list_is_the_same_object(self, redactor: Redactor) -> None:
        """Copy-on-write holds for argv lists with harmless flags."""
        argv = ["mina", "--port", "5000", "--max-tokens", "100"]

        assert argv is redactor.redact(argv)

    @pytest.mark.parametrize(("text", "expected"), FLAG_TEXT_CASES)
    def test_text(self, redactor: Redactor, text: str, expected: str) -> None:
        """``--password value`` in a command line or a list's repr."""
        assert expected == redactor.redact_text(text)
        assert expected == redactor.redact_text(expected)

    def test_sentry_sys_argv(self, redactor: Redactor) -> None:
        """Sentry's extra["sys.argv"] loses the secret and keeps the rest."""
        event = {"extra": {"sys.argv": ["gunicorn", "--api-key", "k-1", "-w", "2"]}}

        result = redact_sentry_event(redactor, event)

        assert ["gunicorn", "--api-key", REDACTED, "-w", "2"] == result["extra"]["sys.argv"]

    def test_not_in_source_lines(self, redactor: Redactor) -> None:
        """Code keeps its flags (only hard-coded literals under secret names go)."""
        line = '    cmd = f"mina --password {pw}"'
        event = {"stacktrace": {"frames": [{"context_line": line}]}}

        assert (
            line == redact_sentry_event(redactor, event)["stacktrace"]["frames"][0]["context_line"]
        )


def _check_digit(prefix: str) -> str:
    """Return *prefix* followed by its Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return prefix + str(-total % 10)


def _luhn_ok(digits: str) -> bool:
    return _check_digit(digits[:-1]) == digits


def _brand_ok(digits: str) -> bool:
    """The test's own IIN and length table (written apart from mina.redaction's)."""
    n = len(digits)
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    rules = [
        (digits[0] == "4", n in (13, 16, 19)),  # Visa
        (51 <= p2 <= 55 or 2221 <= p4 <= 2720, n == 16),  # Mastercard
        (p2 in (34, 37), n == 15),  # Amex
        (p2 in (36, 38, 39) or 300 <= p3 <= 305 or p4 == 3095, 14 <= n <= 19),  # Diners
        (3528 <= p4 <= 3589, 16 <= n <= 19),  # JCB
        (p4 == 6011 or p2 in (62, 65) or 644 <= p3 <= 649, 16 <= n <= 19),  # Discover, UnionPay
    ]
    return any(prefix and length for prefix, length in rules)


CARDS = [
    "4111111111111111",  # Visa
    "4012888888881881",
    "4222222222222",  # Visa, 13 digits
    "378282246310005",  # Amex
    "371449635398431",
    "5555555555554444",  # Mastercard
    "5105105105105100",
    "2223003122003222",  # Mastercard 2-series
    "6011111111111117",  # Discover
    "6011000990139424",
    "30569309025904",  # Diners, 14 digits
    "38520000023237",
    "3530111333300000",  # JCB
    "3566002020360505",
    "6200000000000005",  # UnionPay
]
NOT_CARDS = [
    _check_digit("123456781234567"),  # Luhn-valid, no brand starts with 1
    _check_digit("173285634712345678"),  # epoch nanoseconds (19 digits)
    _check_digit("900000000000000"),  # 9: no brand
    _check_digit("41111111111111"),  # Visa prefix, 15 digits
    _check_digit("378282246310005"),  # Amex prefix, 16 digits
    _check_digit("560000000000000"),  # 56: not Mastercard
    _check_digit("272100000000000"),  # 2721: past Mastercard's range
    _check_digit("601200000000000"),  # 6012: not Discover
    "4111111111111112",  # Visa prefix, Luhn fails
]


class TestCards:
    @pytest.mark.parametrize("card", CARDS)
    def test_cards(self, redactor: Redactor, card: str) -> None:
        """Known brands' test numbers are redacted, bare and grouped."""
        grouped = " ".join(card[i : i + 4] for i in range(0, len(card), 4))

        assert f"pay {REDACTED} now" == redactor.redact_text(f"pay {card} now")
        assert f"pay {REDACTED} now" == redactor.redact_text(f"pay {grouped} now")
        assert {"note": REDACTED} == redactor.redact({"note": card})
        assert {"card_number": REDACTED} == redactor.redact({"card_number": card})

    @pytest.mark.parametrize("digits", NOT_CARDS)
    def test_not_cards(self, redactor: Redactor, digits: str) -> None:
        """Luhn-valid digit runs without a brand's prefix and length are kept."""
        assert f"id {digits}" == redactor.redact_text(f"id {digits}")

    @pytest.mark.parametrize(
        "key", ["user_id", "meeting_ids", "requestId", "ts", "time", "created", "start_ns", "t_ms"]
    )
    def test_digit_strings_under_id_and_time_keys(self, redactor: Redactor, key: str) -> None:
        """Under an id or time key a bare digit string is an id, even a card-like one."""
        value = {key: "4111111111111111"}

        assert value is redactor.redact(value)
        assert {key: REDACTED} == redactor.redact({key: "4111 1111 1111 1111"})

    def test_id_keys_with_extra_patterns_are_scanned(self) -> None:
        """With user patterns, digit ids are scanned (the pattern may be about them)."""
        redactor = Redactor(extra_patterns=[r"\b4111\d{12}\b"])

        assert {"user_id": REDACTED} == redactor.redact({"user_id": "4111111111111111"})


@settings(max_examples=300, deadline=None)
@given(digits=st.text(alphabet=string.digits, min_size=13, max_size=19))
def test_digit_runs_without_a_brand_are_never_cards(digits: str) -> None:
    """Random 13-19 digit strings failing the IIN/length (or Luhn) check are kept."""
    assume(not (_brand_ok(digits) and _luhn_ok(digits)))

    assert f"n={digits};" == Redactor().redact_text(f"n={digits};")


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["4", "51", "55", "2221", "2720", "34", "37", "36", "3095", "3528"])
    | st.sampled_from(["3589", "6011", "644", "649", "65", "62", "300", "305", "38", "39"]),
    digits=st.text(alphabet=string.digits, min_size=19, max_size=19),
    size=st.integers(min_value=13, max_value=19),
)
def test_branded_luhn_valid_runs_are_cards(prefix: str, digits: str, size: int) -> None:
    """Every digit run with a brand's prefix and length and a Luhn check digit goes."""
    card = _check_digit((prefix + digits)[: size - 1])
    assume(_brand_ok(card))

    assert f"n={REDACTED};" == Redactor().redact_text(f"n={card};")


@dataclasses.dataclass
class Login:
    username: str
    password: str


class Boom:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Leaky:
    def __repr__(self) -> str:
        return "Leaky(token=abc123)"


class Model:
    """Pydantic-v2-like."""

    def model_dump(self) -> dict[str, Any]:
        return {"name": "m", "api_key": "k"}


class TestStructures:
    def test_nested(self, redactor: Redactor) -> None:
        """Mappings, lists and tuples are walked; sensitive keys keep their key."""
        value = {
            "meeting_id": "m1",
            "headers": {"Authorization": "Bearer x", "Accept": "*/*"},
            "items": [{"password": "p"}, ("GET", "/a?token=t")],
        }

        assert {
            "meeting_id": "m1",
            "headers": {"Authorization": REDACTED, "Accept": "*/*"},
            "items": [{"password": REDACTED}, ("GET", f"/a?token={REDACTED}")],
        } == redactor.redact(value)
        assert "p" == value["items"][0]["password"]  # the input is not modified

    def test_copy_on_write(self, redactor: Redactor) -> None:
        """Unchanged containers come back as themselves."""
        value = {"a": [1, "x", {"b": (2, "y")}], "meeting_id": "m"}

        assert value is redactor.redact(value)

    def test_types(self, redactor: Redactor) -> None:
        """Sets become lists, other mappings dicts, namedtuples keep their type."""
        Point = namedtuple("Point", "x token")
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        ident = uuid.uuid4()

        assert ["a"] == redactor.redact({"a"})
        assert ["a"] == redactor.redact(frozenset({"a"}))
        assert {"token": REDACTED} == redactor.redact(OrderedDict(token="t"))
        assert Point(1, "x") == redactor.redact(Point(1, "x"))
        assert [1, 2.5, None, True, when, ident] == redactor.redact(
            [1, 2.5, None, True, when, ident]
        )

    def test_mapping_with_fresh_keys(self, redactor: Redactor) -> None:
        """A Mapping that makes new key objects on each iteration is still redacted."""
        token = "ghp_" + "k3Y" * 12

        class Fresh(Mapping[str, Any]):
            def __getitem__(self, key: str) -> Any:
                return {"meeting_id": "m", token: 1, "api_key": "k"}[key]

            def __iter__(self) -> Iterator[str]:
                return iter(["".join(["meeting", "_id"]), "".join(token), "".join("api_key")])

            def __len__(self) -> int:
                return 3

        assert {"meeting_id": "m", REDACTED: 1, "api_key": REDACTED} == redactor.redact(Fresh())

    def test_dataclass_and_models(self, redactor: Redactor) -> None:
        """Dataclasses and Pydantic-like models become redacted dicts."""
        assert {"username": "bob", "password": REDACTED} == redactor.redact(Login("bob", "pw"))
        assert {"name": "m", "api_key": REDACTED} == redactor.redact(Model())

    def test_bytes_become_text(self, redactor: Redactor) -> None:
        """Bytes are decoded as UTF-8 (bad bytes replaced) and scanned."""
        assert f"token={REDACTED} \ufffd" == redactor.redact(b"token=abc \xff")
        assert "ok" == redactor.redact(bytearray(b"ok"))

    def test_annotated_value(self, redactor: Redactor) -> None:
        """Sentry's AnnotatedValue keeps its metadata, its value is redacted."""
        value = AnnotatedValue("password=hunter2", {"rem": []})

        redacted = redactor.redact(value)

        assert AnnotatedValue(f"password={REDACTED}", {"rem": []}) == redacted

    def test_objects(self, redactor: Redactor) -> None:
        """Objects are kept unless their repr holds a secret; they never make it raise."""
        plain = object()

        assert plain is redactor.redact(plain)
        assert f"Leaky(token={REDACTED})" == redactor.redact(Leaky())
        assert "<unrepresentable Boom>" == redactor.redact(Boom())
        assert f"ValueError: bad password={REDACTED}" == redactor.redact(
            ValueError("bad password=hunter2")
        )

    def test_cycles(self, redactor: Redactor) -> None:
        """A container that contains itself becomes a placeholder; no loop, no raise."""
        loop: dict[str, Any] = {"token": "t", "meeting_id": "m"}
        loop["self"] = loop
        items: list[Any] = ["x"]
        items.append(items)

        assert {"token": REDACTED, "meeting_id": "m", "self": "<cycle>"} == redactor.redact(loop)
        assert ["x", "<cycle>"] == redactor.redact(items)

    def test_shared_is_not_a_cycle(self, redactor: Redactor) -> None:
        """The same object twice (not nested in itself) is redacted twice."""
        shared = {"token": "t"}

        assert [{"token": REDACTED}] * 2 == redactor.redact([shared, shared])

    def test_depth(self) -> None:
        """Nesting deeper than max_depth becomes a placeholder."""
        value: Any = "leaf"
        for _ in range(10):
            value = [value]

        redacted = Redactor(max_depth=3).redact(value)

        assert [[["<max depth>"]]] == redacted

    def test_very_deep_never_raises(self, redactor: Redactor) -> None:
        """Depth far beyond the recursion limit is fine."""
        value: Any = {}
        for _ in range(5000):
            value = {"a": value}

        assert isinstance(redactor.redact(value), dict)


class TestProcessor:
    def test_redacts_in_place(self, redactor: Redactor) -> None:
        """The structlog processor redacts keys, values and the event text in place."""
        event_dict: dict[str, Any] = {
            "event": "login failed for password=hunter2",
            "level": "warning",
            "meeting_id": "m1",
            "api_key": "k",
            "headers": {"Cookie": "session=s"},
            "count": 3,
        }

        result = redactor(None, "warning", event_dict)

        assert result is event_dict
        assert {
            "event": f"login failed for password={REDACTED}",
            "level": "warning",
            "meeting_id": "m1",
            "api_key": REDACTED,
            "headers": {"Cookie": REDACTED},
            "count": 3,
        } == event_dict
        assert ["event", "level", "meeting_id", "api_key", "headers", "count"] == list(event_dict)

    def test_exc_info_is_passed_through(self, redactor: Redactor) -> None:
        """exc_info stays an exception for the renderer (the formatter redacts the text)."""
        exc = ValueError("token=abc")
        event_dict: dict[str, Any] = {"event": "x", "exc_info": exc}

        assert exc is redactor(None, "error", event_dict)["exc_info"]

    def test_secret_key_is_renamed(self, redactor: Redactor) -> None:
        """A key that is itself a secret is replaced by the marker."""
        token = "sk-" + "A1b2" * 6
        event_dict: dict[str, Any] = {"event": "x", token: 1}

        assert {"event": "x", REDACTED: 1} == redactor(None, "info", event_dict)

    def test_processor_never_raises(self, redactor: Redactor) -> None:
        """An unrepresentable value does not break the log call."""
        event_dict: dict[str, Any] = {"event": "x", "obj": Boom()}

        assert {"event": "x", "obj": "<unrepresentable Boom>"} == redactor(None, "info", event_dict)


def realistic_event() -> dict[str, Any]:
    """A Sentry error event as the SDK hands it to before_send (serialised)."""
    return {
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "timestamp": "2026-11-29T05:00:00.000000Z",
        "platform": "python",
        "level": "error",
        "logger": "mina.observability.flask",
        "release": "mina@0.1.0",
        "environment": "production",
        "server_name": "web-1",
        "sdk": {"name": "sentry.python.flask", "version": "2.75.0"},
        "modules": {"pyjwt": "2.8.0", "django-otp": "1.0"},
        "logentry": {
            "message": "login failed for %s with token=%s",
            "params": ["bob", "tok-123456"],
            "formatted": "login failed for bob with token=tok-123456",
        },
        "message": "password=hunter2",
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "module": None,
                    "value": "bad Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.sig123",
                    "mechanism": {"type": "flask", "handled": False},
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "mina/web.py",
                                "abs_path": "/app/mina/web.py",
                                "function": "login",
                                "module": "mina.observability.flask",
                                "lineno": 42,
                                "pre_context": ["def login():", "    # the secret path"],
                                "context_line": '    password = request.json["password"]',
                                "post_context": ["    token=issue(password)"],
                                "vars": {
                                    "password": "'hunter2'",
                                    "api_key": "'k-live-9'",
                                    "meeting_id": "'m-77'",
                                    "url": "'https://x/?token=urltok&page=2'",
                                    "db": "'postgres://mina:dbpw@db/mina'",
                                },
                                "in_app": True,
                            }
                        ]
                    },
                }
            ]
        },
        "request": {
            "url": "https://mina.example.com/api/login",
            "method": "POST",
            "query_string": "next=/home&access_token=qtok",
            "headers": {
                "Authorization": "Bearer headtok",
                "X-Api-Key": "headkey",
                "Cookie": "session=cookietok",
                "User-Agent": "curl/8",
                "X-Request-ID": "r-1",
            },
            "cookies": {"session": "cookietok"},
            "data": {"username": "bob", "password": "formpw", "remember": True},
            "env": {"REMOTE_ADDR": "203.0.113.9", "SERVER_NAME": "mina"},
        },
        "user": {
            "id": "42",
            "username": "bob",
            "email": "bob@example.com",
            "ip_address": "203.0.113.9",
        },
        "tags": {"meeting_id": "m-77", "auth": "tagtok"},
        "contexts": {
            "trace": {
                "trace_id": "771a43a4192642f0b136d5159a501700",
                "span_id": "a1b2c3d4e5f60718",
            },
            "runtime": {"name": "CPython", "version": "3.11.9"},
        },
        "extra": {"client_secret": "extrasecret", "duration_ms": 12},
        "breadcrumbs": {
            "values": [
                {
                    "type": "log",
                    "category": "mina.observability.flask",
                    "message": "calling https://api?api_key=crumbkey",
                    "data": {"refresh_token": "crumbtok", "meeting_id": "m-77"},
                    "timestamp": "2026-11-29T04:59:59Z",
                }
            ]
        },
        "spans": [
            {
                "op": "db",
                "description": "UPDATE users SET password='sqlpw' WHERE id=42",
                "data": {"db.params": ["bob", "sqlparam"], "db.system": "sqlite"},
                "span_id": "b1b2c3d4e5f60718",
                "trace_id": "771a43a4192642f0b136d5159a501700",
            }
        ],
        "transaction": "/api/login",
    }


SECRETS = [
    "tok-123456",
    "hunter2",
    "eyJhbGciOiJIUzI1NiJ9",
    "k-live-9",
    "urltok",
    "dbpw",
    "qtok",
    "headtok",
    "headkey",
    "cookietok",
    "formpw",
    "tagtok",
    "extrasecret",
    "crumbkey",
    "crumbtok",
    "sqlpw",
    "sqlparam",
]


class TestSentry:
    def test_event(self, redactor: Redactor) -> None:
        """No secret survives; Sentry's structure and harmless context do."""
        event = realistic_event()
        original = json.dumps(event)

        result = redact_sentry_event(redactor, event)
        dumped = json.dumps(result, default=str)

        assert [] == [s for s in SECRETS if s in dumped]
        assert original == json.dumps(event)  # the input is not modified
        for key in ("event_id", "timestamp", "sdk", "modules", "release", "environment"):
            assert event[key] == result[key]
        assert event["contexts"] == result["contexts"]
        frame = result["exception"]["values"][0]["stacktrace"]["frames"][0]
        assert '    password = request.json["password"]' == frame["context_line"]
        assert ["    token=issue(password)"] == frame["post_context"]
        assert "'m-77'" == frame["vars"]["meeting_id"]
        assert ("mina/web.py", "login", 42) == (
            frame["filename"],
            frame["function"],
            frame["lineno"],
        )
        assert {"id": "42", "username": "bob"} == result["user"]
        assert "REMOTE_ADDR" not in result["request"]["env"]
        assert "curl/8" == result["request"]["headers"]["User-Agent"]
        assert "/api/login" == result["transaction"]
        assert "m-77" == result["tags"]["meeting_id"]
        assert 12 == result["extra"]["duration_ms"]
        assert "login failed for %s with token=%s" == result["logentry"]["message"]

    def test_event_with_pii(self) -> None:
        """With send_pii the user's e-mail and IP stay; secrets still go."""
        result = redact_sentry_event(Redactor(send_pii=True), realistic_event())

        assert "bob@example.com" == result["user"]["email"]
        assert "203.0.113.9" == result["user"]["ip_address"]
        assert "203.0.113.9" == result["request"]["env"]["REMOTE_ADDR"]
        assert [] == [s for s in SECRETS if s in json.dumps(result, default=str)]

    def test_code_lines_keep_code_but_not_credentials(self, redactor: Redactor) -> None:
        """Source lines lose only hard-coded secrets, never code."""
        key = "AKIAIOSFODNN7EXAMPLE"
        event = {
            "stacktrace": {
                "frames": [
                    {
                        "context_line": f'    client(key="{key}", password=request.args["pw"])',
                        "pre_context": [
                            '    url = f"postgres://{user}:{pw}@{host}"',
                            '    body = {"password": password, "token": "hard-coded"}',
                            "def login(password: str, token: str = 'x') -> None:",
                            '    password = request.json["password"]',
                        ],
                    }
                ]
            }
        }

        frame = redact_sentry_event(redactor, event)["stacktrace"]["frames"][0]

        assert f'    client(key="{REDACTED}", password=request.args["pw"])' == frame["context_line"]
        assert [
            '    url = f"postgres://{user}:{pw}@{host}"',
            f'    body = {{"password": password, "token": "{REDACTED}"}}',
            "def login(password: str, token: str = 'x') -> None:",
            '    password = request.json["password"]',
        ] == frame["pre_context"]

    def test_breadcrumb(self, redactor: Redactor) -> None:
        """Breadcrumb message and data are redacted."""
        crumb = {
            "category": "httplib",
            "message": "GET /x?token=t1",
            "data": {"url": "https://h/?api_key=t2", "Authorization": "t3", "status_code": 200},
        }

        assert {
            "category": "httplib",
            "message": f"GET /x?token={REDACTED}",
            "data": {
                "url": f"https://h/?api_key={REDACTED}",
                "Authorization": REDACTED,
                "status_code": 200,
            },
        } == redact_breadcrumb(redactor, crumb)

    def test_log(self, redactor: Redactor) -> None:
        """Sentry Logs: body and attributes (plain or typed) are redacted, shapes kept."""
        log = {
            "severity_text": "info",
            "body": "login bob password=hunter2",
            "attributes": {
                "sentry.message.parameter.token": "t1",
                "api_key": {"value": "t2", "type": "string"},
                "meeting_id": {"value": "m-1", "type": "string"},
                "count": {"value": 3, "type": "integer"},
                "pin": {"value": 1234, "type": "integer"},
                "sentry.message.parameter.0": {"value": "bob", "type": "string"},
                "sentry.message.parameter.1": {"value": "hunter2", "type": "string"},
            },
            "trace_id": "771a43a4192642f0b136d5159a501700",
        }

        assert {
            "severity_text": "info",
            "body": f"login bob password={REDACTED}",
            "attributes": {
                "sentry.message.parameter.token": REDACTED,
                "api_key": {"value": REDACTED, "type": "string"},
                "meeting_id": {"value": "m-1", "type": "string"},
                "count": {"value": 3, "type": "integer"},
                "pin": {"value": REDACTED, "type": "string"},
                "sentry.message.parameter.0": {"value": "bob", "type": "string"},
                "sentry.message.parameter.1": {"value": REDACTED, "type": "string"},
            },
            "trace_id": "771a43a4192642f0b136d5159a501700",
        } == redact_sentry_log(redactor, log)


# -- properties ----------------------------------------------------------------------------

SECRET_KEY_NAMES = ["password", "api_key", "accessToken", "X-Auth-Token", "client_secret", "Cookie"]
HARMLESS = st.text(alphabet=string.ascii_lowercase + " ", max_size=12)
leaves = st.one_of(st.integers(), HARMLESS, st.none(), st.booleans())
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(["a", "b", "items", "data", "meeting_id"]), children, max_size=4
        ),
    ),
    max_leaves=20,
)
canaries = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40).map(
    lambda s: "CANARY" + s
)


def _plant(tree: Any, path: list[int], item: tuple[str, Any]) -> Any:
    """Put *item* (key, value) in the first dict along *path*, or wrap *tree* in one."""
    key, value = item
    node = tree
    for step in path:
        children = list(node.values()) if isinstance(node, dict) else node
        if not isinstance(children, list) or not children:
            break
        child = children[step % len(children)]
        if not isinstance(child, dict | list):
            break
        node = child
    if isinstance(node, dict):
        node[key] = value
        return tree
    if isinstance(node, list):
        node.append({key: value})
        return tree
    return {"root": tree, key: value}


def _plantings(canary: str) -> list[tuple[str, Any]]:
    return [
        ("secret", canary),  # replaced by the key below
        ("url", f"https://mina.example.com/cb?token={canary}&page=2"),
        ("headers", f"Authorization: Bearer {canary}"),
        ("error", f"ValueError('login failed: password={canary}')"),
        ("exc", ValueError(f"bad token={canary}")),
        ("dsn", f"postgres://mina:{canary}@db/mina"),
        ("blob", f"token={canary}".encode()),
        ("body", json.dumps({"user": "bob", "client_secret": canary})),
        ("nested", json.dumps(json.dumps({"password": canary}))),  # JSON inside JSON
        ("raw", f"X-Api-Key: {canary}\nAccept: */*"),
        ("login", Login("bob", canary)),
        ("from", f"mail from {canary}@example.com"),
        ("jwt", f"eyJhbGciOiJIUzI1NiJ9.eyJ{canary}.{canary}"),
        ("aws", f"key=AKIA{canary.upper()[-16:].rjust(16, 'X')}"),
    ]


def _sentry_slots(event: dict[str, Any], canary: str) -> list[Callable[[], None]]:
    """Ways to put *canary* into the user-controlled parts of a Sentry event."""
    exc = event["exception"]["values"][0]
    frame = exc["stacktrace"]["frames"][0]
    request = event["request"]
    return [
        lambda: exc.update(value=f"failed: token={canary}"),
        lambda: frame["vars"].update(refresh_token=repr(canary)),
        lambda: frame["vars"].update(body=repr({"password": canary})),
        lambda: request.update(query_string=f"a=1&api_key={canary}"),
        lambda: request["headers"].update({"X-Auth-Token": canary}),
        lambda: request.update(data=json.dumps({"secret": canary})),
        lambda: request["cookies"].update(theme=canary),
        lambda: event["breadcrumbs"]["values"][0]["data"].update(url=f"https://h?token={canary}"),
        lambda: event["extra"].update(creds={"private_key": canary}),
        lambda: event["tags"].update(session_id=canary),
        lambda: event["contexts"].update(db={"dsn": f"postgres://u:{canary}@h/db"}),
        lambda: event["spans"][0]["data"]["db.params"].append(canary),
        lambda: event["user"].update(email=f"{canary}@example.com"),
        lambda: event["logentry"].update(formatted=f"login with Bearer {canary}"),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=trees,
    canary=canaries,
    path=st.lists(st.integers(min_value=0, max_value=5), max_size=4),
    how=st.integers(min_value=0, max_value=13),
    key=st.sampled_from(SECRET_KEY_NAMES),
)
def test_canary_never_survives(tree: Any, canary: str, path: list[int], how: int, key: str) -> None:
    """A secret planted anywhere, in any form, never appears in the redacted output."""
    name, value = _plantings(canary)[how]
    if how == 0:
        name = key
    tree = _plant(tree, path, (name, value))
    tree = _plant(tree, path[::-1], ("meeting_id", "keep-me-42"))

    redacted = Redactor().redact(tree)

    assert canary not in repr(redacted)
    assert "keep-me-42" in repr(redacted)


@settings(max_examples=100, deadline=None)
@given(tree=trees)
def test_harmless_trees_are_returned_as_is(tree: Any) -> None:
    """Without secrets, redaction is the identity (and allocates nothing)."""
    assert tree is Redactor().redact(tree)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_text_never_raises_and_is_idempotent(text: str) -> None:
    """Arbitrary text never breaks the redactor; a second pass changes nothing."""
    redactor = Redactor()

    once = redactor.redact_text(text)

    assert once == redactor.redact_text(once)


def test_real_sdk_event_through_the_hooks(sentry_ingest: SentryIngest) -> None:
    """The real sentry-sdk, its serializer and transport: nothing secret reaches the wire."""
    # Made at run time, so they are not in this file's source lines that Sentry sends, and
    # kept under a sensitive name, as this test's own frame (and its locals) is sent too.
    secret = {name: f"CANARY{secrets.token_hex(8)}" for name in ("pw", "sid", "ctx", "crumb", "k")}
    redactor = Redactor()
    sentry_sdk.init(
        dsn=sentry_ingest.dsn,
        default_integrations=False,
        auto_enabling_integrations=False,
        http_proxy="",
        include_local_variables=True,
        before_send=lambda event, hint: redact_sentry_event(redactor, event),
        before_breadcrumb=lambda crumb, hint: redact_breadcrumb(redactor, crumb),
    )
    sentry_sdk.set_user({"id": "42", "username": "bob", "email": "bob@example.com"})
    sentry_sdk.set_tag("meeting_id", "m-77")
    sentry_sdk.set_context("upstream", {"url": f"https://u:{secret['ctx']}@api/x", "region": "eu"})
    sentry_sdk.add_breadcrumb(
        message=f"GET /x?token={secret['crumb']}", data={"api_key": secret["k"]}
    )

    def login(password: str) -> None:
        state = {"sessionid": secret["sid"], "meeting_id": "m-77"}
        raise ValueError(f"login failed, password={password} session={state['sessionid']}")

    try:
        login(secret["pw"])
    except ValueError:
        sentry_sdk.capture_exception()
    sentry_sdk.get_client().flush(timeout=5)

    [event] = sentry_ingest.wait_for_events(1)
    wire = b"".join(sentry_ingest.raw_bodies)

    assert [] == re.findall(rb"CANARY\w*", wire)
    assert b"bob@example.com" not in wire
    assert {"id": "42", "username": "bob"} == event["user"]
    assert "m-77" == event["tags"]["meeting_id"]
    assert "eu" == event["contexts"]["upstream"]["region"]
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert "raise ValueError" in frame["context_line"]
    assert REDACTED == frame["vars"]["password"]
    assert {"sessionid": REDACTED, "meeting_id": "'m-77'"} == frame["vars"]["state"]


@settings(max_examples=60, deadline=None)
@given(canary=canaries, slot=st.integers(min_value=0, max_value=13))
def test_canary_never_reaches_sentry(canary: str, slot: int) -> None:
    """A secret planted in any user-controlled part of a Sentry event never survives."""
    event = realistic_event()
    _sentry_slots(event, canary)[slot]()

    result = redact_sentry_event(Redactor(), event)

    assert canary not in json.dumps(result, default=str)
    assert "m-77" == result["tags"]["meeting_id"]
