"""Credentials recognised by their shape, wherever they appear in text.

Vendors' token formats (`mina.redaction.vendors`: AWS, GitHub, Slack, ...), JWTs, PEM
private key bodies, ``Bearer`` and ``Basic`` credentials, URL passwords
(``postgres://u:[REDACTED]@host``), Sentry DSN keys, and Mina's own API tokens (``mina_`` and
43 or more URL-safe characters, with at least one capital or digit, also glued to other
text: ``req-mina_...``; ``mina_api`` and long snake_case names are kept).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from mina.redaction.vendors import TOKEN_RUN, URL_HINTS, URL_TOKEN, vendor_tokens

__all__ = ["Span", "credentials"]

#: Where a secret is in a text: start and end offsets.
Span = tuple[int, int]

_TOKEN = r"[A-Za-z0-9\-._~+/]"
# Mina's own API tokens (mina.db: TOKEN_PREFIX + secrets.token_urlsafe(32), 43 characters).
# Not a vendor format: a token glued to an id ("req-mina_...") or to more text is still one.
_MINA_TOKEN: Final = re.compile(r"(?<![A-Za-z0-9])mina_[A-Za-z0-9_\-]{43,}")
_PEM: Final = re.compile(
    r"(?i)(-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----)[\s\S]*?"
    r"(?=-----END[ A-Z0-9_-]{0,100}PRIVATE KEY|\Z)"
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


def credentials(text: str, add: Callable[[Span], object]) -> list[Span]:
    """Call *add* with the span of every credential shape in *text*.

    Return the spans of the URL authorities (``user:password@``) found, so that an e-mail
    rule does not take ``user@host`` in a URL for an address.
    """
    if "-----" in text:
        for m in _PEM.finditer(text):
            if m.end() > m.end(1):
                add((m.end(1), m.end()))
    if len(text) >= 12:  # shorter than any format
        for run in TOKEN_RUN.finditer(text):  # most texts have none: short words, numbers
            for span in vendor_tokens(text, run.start(), run.end()):
                add(span)
    if any(hint in text for hint in URL_HINTS):
        for m in URL_TOKEN.finditer(text):
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
    authorities: list[Span] = []
    if "://" in text and "@" in text:
        for m in _USERINFO.finditer(text):
            authorities.append((m.start(1), m.end()))
            password = m.group(2)
            if password and not password.startswith("{"):  # not an f-string in code
                add(m.span(2))
            elif _DSN_KEY.fullmatch(m.group(1)):
                add(m.span(1))
    return authorities
