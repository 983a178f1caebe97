"""Secrets found by the words beside them (`mina.redaction.catalogue`).

Each vendor rule of `KEYED` has a should-match row (its format assigned to a name holding the
vendor's name) and a should-not-match row (the same value under a name without it); the
secret-word rules, curl and the judgement on plain ids have their own rows.
"""

from __future__ import annotations

import random
import re
import string

import pytest

from mina.redaction import REDACTED, Redactor
from mina.redaction.catalogue import KEYED
from tools.regex_sample import Sampler

R = REDACTED
_rng = random.Random(18)


def _value(pattern: str) -> str:
    """A value of *pattern* (drawn with the recall tool's sampler, fixed seed)."""
    compiled = re.compile(f"(?i:{pattern})")
    sampler = Sampler(compiled.pattern, _rng)
    for _ in range(200):
        text = sampler.sample()
        if compiled.fullmatch(text) and text[0].isalnum() and any(c.isdigit() for c in text):
            return text
    raise AssertionError(pattern)


def _name(names: tuple[str, ...]) -> str:
    """A config name holding the vendor's name: ``ASANA_TOKEN`` for ``asana``."""
    return f"{names[-1].upper()}_TOKEN"


KEYED_ROWS = [(names, _name(names), _value(value)) for names, value in KEYED]


@pytest.mark.parametrize(("names", "name", "value"), KEYED_ROWS, ids=[r[0][0] for r in KEYED_ROWS])
def test_vendor_assignment_is_redacted(
    redactor: Redactor, names: tuple[str, ...], name: str, value: str
) -> None:
    """Assigned to a name holding the vendor's name, in any quoting, the value goes."""
    for line in (f"{name}={value}", f'{name} = "{value}"', f"{name}: '{value}'"):
        out = redactor.redact_text(f"loaded {line} from env")
        assert value not in out
    assert f"'config:\\n\\t{name} = {R}\\n'" == redactor.redact_text(
        repr(f"config:\n\t{name} = {value}\n")
    )


@pytest.mark.parametrize(("names", "name", "value"), KEYED_ROWS, ids=[r[0][0] for r in KEYED_ROWS])
def test_same_value_without_the_vendor_name_is_kept(
    redactor: Redactor, names: tuple[str, ...], name: str, value: str
) -> None:
    """Under a name that says nothing (``order``), a value of a plain format stays.

    Formats with a prefix of their own (``dnkey-``, ``AQVN``) are caught anywhere by
    `mina.redaction.vendors`; the others (hex, digits, alphanumerics) must stay.
    """
    text = f"order={value}"
    out = redactor.redact_text(text)
    if re.fullmatch(r"[A-Za-z0-9]+", value):
        assert text == out


# The judgement on plain ids (docs/redaction.md): the vendor's name is the only evidence.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ASANA_CLIENT_ID=1234567890123456", f"ASANA_CLIENT_ID={R}"),
        ('{"asana_client_id": "1234567890123456"}', f'{{"asana_client_id": "{R}"}}'),
        ("order_id=1234567890123456", "order_id=1234567890123456"),
        ("asana task 1234567890123456 moved", "asana task 1234567890123456 moved"),
        ("HEROKU_API_KEY: 0f8fad5b-d9cb-469f-a165-70867728950e", f"HEROKU_API_KEY: {R}"),
        (
            "meeting_id=0f8fad5b-d9cb-469f-a165-70867728950e",
            "meeting_id=0f8fad5b-d9cb-469f-a165-70867728950e",
        ),
    ],
)
def test_plain_ids_only_beside_the_vendor_name(
    redactor: Redactor, text: str, expected: str
) -> None:
    """A 16-digit Asana id or a Heroku UUID is redacted only when assigned to its vendor."""
    assert expected == redactor.redact_text(text)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"asana_client_id": "1234567890123456"}, {"asana_client_id": R}),
        ({"order_id": "1234567890123456"}, {"order_id": "1234567890123456"}),
        ({"HEROKU_API_KEY": "0f8fad5b-d9cb-469f-a165-70867728950e"}, {"HEROKU_API_KEY": R}),
        ({"datadog": "a" * 8 + "0123456789abcdef0123456789abcdef"}, {"datadog": R}),
        ({"datadog_site": "datadoghq.eu"}, {"datadog_site": "datadoghq.eu"}),
        (
            {"key": "0f8fad5b-d9cb-469f-a165-70867728950e"},
            {"key": "0f8fad5b-d9cb-469f-a165-70867728950e"},
        ),
        ({"signing_kid": "Zq8Lm2Pv9Xw4Rt6Yk1Ab"}, {"signing_kid": "Zq8Lm2Pv9Xw4Rt6Yk1Ab"}),
        ({"client_key": "Zq8Lm2Pv9Xw4Rt6Yk1Ab"}, {"client_key": R}),
    ],
)
def test_mapping_keys_follow_the_same_rules(
    redactor: Redactor, event: dict[str, str], expected: dict[str, str]
) -> None:
    """A mapping's key is an assignment's name: the same judgement holds for event dicts."""
    assert expected == redactor.redact(event)
    assert expected == redactor(None, "info", dict(event))


SECRET_WORDS = [
    ("passwd = Xk9-mQ2vLp", f"passwd = {R}"),
    ("passwd = Xk9#mQ2vLp!", f"passwd = {R}"),
    ("login(pwd = Xk9#mQ2vLp) failed", f"login(pwd = {R}) failed"),
    ("creds: u9Fh2KqP0wZx7Lm3", f"creds: {R}"),
    ("DD_API_KEY=8f3a9c2e1b7d4f6a0c5e8b2d9f1a3c7e", f"DD_API_KEY={R}"),
    ("STRIPE_SECRET=Zq8Lm2Pv9Xw4Rt6Yk1", f"STRIPE_SECRET={R}"),
    ("GITHUB_TOKEN: Ab3Cd5Ef7Gh9Ij1Kl3Mn5", f"GITHUB_TOKEN: {R}"),
    ("client_key := 'q8W2e4R6t8Y0u2I4o6P8'", f"client_key := '{R}'"),
    ('$api_key => "q8W2e4R6t8Y0u2I4o6P8"', f'$api_key => "{R}"'),
    ("('auth_key', 'q8W2e4R6t8Y0u2I4o6P8')", f"('auth_key', '{R}')"),
    ("config:\n  password: hunter2-Xy9\n", f"config:\n  password: {R}\n"),
    ("curl -u admin:S3cr3t-pass https://x", f"curl -u {R} https://x"),
    # A header line's value runs to the end of the line (the pair rule of mina.redaction.text).
    (
        'curl --header "X-Api-Key: q8W2e4R6t8Y0u2I4" https://x',
        f'curl --header "X-Api-Key: {R}',
    ),
    ("curl -H 'aUthORIzATIoN: Zq8Lm2Pv9Xw4' https://x", f"curl -H 'aUthORIzATIoN: {R}' https://x"),
    (
        '<add key="ClearTextPassword" value="Hunter2-xyz" />',
        f'<add key="ClearTextPassword" value="{R}" />',
    ),
]
SECRET_WORD_NEAR_MISSES = [
    "sort_key=created_at_desc",
    "public_key_id=key-2026-01",
    "cache_key=user:42:profile",
    "api_version=2024-01-01",
    "key: value",
    "token_count=1234567890",
    "s3_key=uploads/2026/12/a.wav",
    "the api returned: 200 OK in 12 ms",
    "password = request.json['password']",
    "token = self.refresh_token",
    "password = get_password(user)",
    "password = %(password)s",
    "passwd = abc#aaaa",
    "token refresh scheduled, next_run=2026-12-01T10:00:00Z",
    "auth provider: google-oauth2|1234567890",
    "using access mode=readonly for bucket=mina-audio-2026",
    "secret rotation: version=17 rotated_at=2026-11-01",
    "key=meetings/2026/12/07/0f8fad5b.wav",
    "primary_key=0f8fad5b-d9cb-469f-a165-70867728950e",
    "webhook key: 8f3a9c2e (truncated)",
    "API rate: 120/min, token bucket=50",
    "keyboard layout: de-nodeadkeys",
    "credentials loaded from /run/secrets/mina.env",
    "sumOfExposures = sumOfExposures;",
    "discord=000000000000000000",
]


@pytest.mark.parametrize(("text", "expected"), SECRET_WORDS)
def test_secret_word_contexts(redactor: Redactor, text: str, expected: str) -> None:
    """A random value beside a secret word goes, in every assignment style."""
    assert expected == redactor.redact_text(text)


@pytest.mark.parametrize("text", SECRET_WORD_NEAR_MISSES)
def test_secret_word_near_misses_are_kept(redactor: Redactor, text: str) -> None:
    """Words, ids, paths, numbers and code beside a secret word stay."""
    assert text == redactor.redact_text(text)


def test_a_long_run_of_separators_is_linear(redactor: Redactor) -> None:
    """Nested assignments are each looked at once (no value re-read to the text's end)."""
    text = "password=" * 2000
    assert REDACTED in redactor.redact_text(text) or text == redactor.redact_text(text)


def test_alphabet_is_printable() -> None:
    """The sampler draws printable characters only (what a log line can hold)."""
    sampler = Sampler(r"[^a]{50}\s.", random.Random(1))
    assert set(sampler.sample()) <= set(string.printable) - set("\n\r\x0b\x0c")
