"""Encoded secrets: found in decoded views, replaced where they stand in the text."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mina.redaction import REDACTED, Redactor

R = REDACTED
GHP = "ghp_" + "a1B2c3D4" * 5
SK = "sk-proj-" + "Ab12Cd34Ef56" * 3

ENCODED = [
    # The query: a query inside a query, and an e-mail, percent-encoded.
    (
        f"/api/test-sentry-error?next=%2Fcb%3Fpassword%3Dhunter2xyz%26api_key%3D{SK}"
        "&q=victim%40example.org",
        f"/api/test-sentry-error?next=%2Fcb%3Fpassword%3D{R}%26api_key%3D{R}&q={R}",
    ),
    ("password%3Dhunter2xyz", f"password%3D{R}"),
    (f"token%3D{GHP}", f"token%3D{R}"),
    (f"key%20{SK}", f"key%20{R}"),
    ("card%204111111111111111", f"card%20{R}"),
    ("paid with card%204111%201111%201111%201111 ok", f"paid with card%20{R} ok"),
    # Twice and three times over.
    ("next=password%253Dhunter2xyz%2526page%253D2", f"next=password%253D{R}%2526page%253D2"),
    ("q=victim%2540example.org&page=2", f"q={R}&page=2"),
    ("a=password%25253Dhunter2xyz", f"a=password%25253D{R}"),
    # "+" for a space in a query.
    ("q=card+4111+1111+1111+1111&x=1", f"q=card+{R}&x=1"),
    # JSON and Python escapes, as reprs in frame locals and JSON inside JSON show them.
    (f"'a\\t{GHP}'", f"'a\\t{R}'"),
    (f"'line one\\n{GHP}\\n'", f"'line one\\n{R}\\n'"),
    ("'db:\\n  password: hunter2\\n  host: db'", f"'db:\\n  password: {R}\\n  host: db'"),
    ('{"\\u0070assword": "hunter2"}', f'{{"\\u0070assword": "{R}"}}'),
    ("'\\x70assword=hunter2 ok'", f"'\\x70assword={R} ok'"),
    ("'\\\\u0070assword=hunter2'", f"'\\\\u0070assword={R}'"),
    (
        '"{\\"token\\": \\"abc123\\", \\"page\\": 2}"',
        f'"{{\\"token\\": \\"{R}\\", \\"page\\": 2}}"',
    ),
    # http.client's request bytes in a frame local: only the credential goes.
    (
        "b'GET /x HTTP/1.1\\r\\nHost: 127.0.0.1:8000\\r\\nAuthorization: Basic dXNlcjpodW50ZXIy"
        "\\r\\nAccept: */*\\r\\n\\r\\n'",
        f"b'GET /x HTTP/1.1\\r\\nHost: 127.0.0.1:8000\\r\\nAuthorization: Basic {R}"
        "\\r\\nAccept: */*\\r\\n\\r\\n'",
    ),
    # Base64: a short Basic credential (user:password), a data URL's text.
    ("sent Basic dTpw upstream", f"sent Basic {R} upstream"),
    (
        "data:text/plain;base64," + base64.b64encode(b"password=hunter2xyz").decode(),
        f"data:text/plain;base64,cGFzc3dvcmQ9{R}",
    ),
    (
        "data:text/plain;base64," + base64.b64encode(b"note: call ada@example.org today").decode(),
        f"data:text/plain;base64,bm90ZTogY2Fs{R}dG9kYXk=",
    ),
]

KEPT = [
    "100% done",
    "50%OFF",
    "C:\\new\\token.txt",
    "a+b=c",
    "https://example.com/search?q=caf%C3%A9&page=2",
    "%7B%22id%22%3A42%7D",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "data:text/plain;base64," + base64.b64encode(b"hello world").decode(),
    "Basic authentication",
    "ts=2026-12-01T10:00:00+00:00",
    "'line one\\nline two\\ttabbed'",
    '{"title": "Q3 planning \\u2014 draft", "id": 42}',
    "/api/meetings?title=Weekly%20sync&after=2026-12-01T10%3A00%3A00Z",
    "'password: \\n'",
    "GET /search?q=token%20limits%20explained",
]


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(("text", "expected"), ENCODED)
def test_an_encoded_secret_goes_where_it_stands(
    redactor: Redactor, text: str, expected: str
) -> None:
    assert expected == redactor.redact_text(text)


@pytest.mark.parametrize("text", KEPT)
def test_harmless_encoded_text_is_kept(redactor: Redactor, text: str) -> None:
    assert text == redactor.redact_text(text)


@pytest.mark.parametrize(("text", "expected"), ENCODED)
def test_idempotent(redactor: Redactor, text: str, expected: str) -> None:
    once = redactor.redact_text(text)

    assert once == redactor.redact_text(once)


def test_walked_values_are_decoded_too(redactor: Redactor) -> None:
    """Values under harmless keys, as in an event dict or a Sentry payload."""
    event = {"next": "%2Fcb%3Ftoken%3Dabc123%26page%3D2", "raw": "'a\\tpassword: x1\\n'"}

    assert {"next": f"%2Fcb%3Ftoken%3D{R}%26page%3D2", "raw": f"'a\\tpassword: {R}\\n'"} == (
        redactor.redact(event)
    )


ENCODINGS = {
    "percent": lambda s: urllib.parse.quote(s, safe=""),
    "percent, + for space": lambda s: urllib.parse.quote_plus(s, safe=""),
    "json": lambda s: json.dumps(s)[1:-1],
    "json ascii": lambda s: json.dumps("caf\u00e9 " + s, ensure_ascii=True)[1:-1],
    "repr": lambda s: repr(s)[1:-1],
    "unicode escapes": lambda s: "".join(f"\\u{ord(c):04x}" if c in "=: " else c for c in s),
}


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=12).map(
        lambda s: "Zq" + s
    ),
    key=st.sampled_from(["password", "api_key", "token", "client_secret", "X-Api-Key"]),
    sep=st.sampled_from(["=", ": ", "="]),
    layers=st.lists(st.sampled_from(sorted(ENCODINGS)), min_size=1, max_size=3),
    around=st.sampled_from(["{}", "next={}&page=2", "\tctx: {}\n", "GET /cb?state={} HTTP/1.1"]),
)
def test_no_encoding_stack_hides_a_secret(
    secret: str, key: str, sep: str, layers: list[str], around: str
) -> None:
    """A pair under a secret key, encoded up to three times over, never passes."""
    text = f"{key}{sep}{secret}\nnext line"
    for layer in layers:
        text = ENCODINGS[layer](text)
    text = around.format(text)

    assert secret not in Redactor().redact_text(text)
