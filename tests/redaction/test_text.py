"""Text rules: pairs, flags, schemes, shapes, Mina tokens, PII, truncation."""

from __future__ import annotations

import base64
import re
import secrets
import uuid

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mina.redaction import REDACTED, Redactor

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
            "from 127.0.0.7 now",  # loopback, but not the address a server prints
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
    ("['mina', '--token', '--verbose']", "['mina', '--token', '--verbose']"),
    ("run --max-tokens 100", "run --max-tokens 100"),
    ("run --no-auth now", "run --no-auth now"),
    ("run --port 5000 --author ann", "run --port 5000 --author ann"),
    ("x--password y", "x--password y"),
    ("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----"),
]


class TestFlagText:
    @pytest.mark.parametrize(("text", "expected"), FLAG_TEXT_CASES)
    def test_text(self, redactor: Redactor, text: str, expected: str) -> None:
        """``--password value`` in a command line or a list's repr."""
        assert expected == redactor.redact_text(text)
        assert expected == redactor.redact_text(expected)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_text_never_raises_and_is_idempotent(text: str) -> None:
    """Arbitrary text never breaks the redactor; a second pass changes nothing."""
    redactor = Redactor()

    once = redactor.redact_text(text)

    assert once == redactor.redact_text(once)


class TestSeveralSecrets:
    GITHUB = "ghp_" + "a1B2c3D4" * 4 + "e5F6"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # Overlapping spans (a pair's value that is also a JWT), then one more secret.
            (f"token={JWT} then {GITHUB}", f"token={REDACTED} then {REDACTED}"),
            (
                f"token={JWT} {JWT} and {GITHUB} ok",
                f"token={REDACTED} {REDACTED} and {REDACTED} ok",
            ),
            (f"a={GITHUB},b={GITHUB} c", f"a={REDACTED},b={REDACTED} c"),
            (f"password=x&token=y {GITHUB}", f"password={REDACTED}&token={REDACTED} {REDACTED}"),
        ],
    )
    def test_every_secret_goes(self, redactor: Redactor, text: str, expected: str) -> None:
        """However their spans overlap or touch, every secret in a text is replaced."""
        assert expected == redactor.redact_text(text)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            # A dict's repr inside a repr (Sentry's frame locals): quotes are escaped.
            (
                "{\\'password\\': \\'hunter2\\', \\'n\\': 1}",
                "{\\'password\\': \\'[REDACTED]\\', \\'n\\': 1}",
            ),
            ('{\\"password\\": \\"hunter2\\"}', '{\\"password\\": \\"[REDACTED]\\"}'),
            ("password=('hunter2', 'x') kept", f"password={REDACTED} kept"),
            ('{"token": ["a", "b"], "n": 1}', f'{{"token": {REDACTED}, "n": 1}}'),
            ("Login(password=('a)b',), user='ada')", f"Login(password={REDACTED}, user='ada')"),
        ],
    )
    def test_quoted_and_bracketed_values(
        self, redactor: Redactor, text: str, expected: str
    ) -> None:
        """Only the value goes: escaped quotes stay around it, brackets go with it."""
        assert expected == redactor.redact_text(text)


HEX = "0123456789abcdef"
IDS = st.one_of(
    st.text(HEX, min_size=32, max_size=32),  # uuid4().hex: request and meeting ids
    st.text("0123456789", min_size=32, max_size=32),  # all digits: no card inside
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(sep=" ") + "Z"),
)


@settings(max_examples=300)
@given(text=IDS, send_pii=st.booleans())
def test_what_is_taken_for_an_id_or_a_time_is_what_the_scan_leaves_alone(
    text: str, send_pii: bool
) -> None:
    # Ids and times skip the scan (a cache of their own); that is only sound while no
    # rule can find anything in them.
    redactor = Redactor(send_pii=send_pii)
    assume(redactor._benign_id(text))
    assert text == redactor._scan(text, code=False)
    assert text == redactor._scan(text, code=True)
