"""Secrets in command lines and configuration snippets, found by their syntax.

- ``curl``: the credential after ``-u``/``--user`` and the value of an ``Authorization`` or
  ``*-Key``/``*-Token`` header given with ``-H``/``--header``;
- NuGet's ``<add key="Password" value="..."/>``;
- Freemius' PHP configuration, ``'secret_key' => 'sk_...'``.

Each also inside a ``repr()``, where tabs are ``\\t``. After gitleaks' rules (MIT licence,
copyright (c) 2019 Zachary Rice; see ``LICENSES/gitleaks.txt``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

__all__ = ["others"]

Span = tuple[int, int]

# curl: "-u user:password", "--user=...", and "-H 'Authorization: ...'" / "--header".
_SP: Final = r"(?:[ \t]|\\t)"  # a space, a tab, or a repr's "\t"
_QUOTED: Final = r"""(?:"[^"\n]{3,}"|'[^'\n]{3,}')"""
_CURL_USER: Final = re.compile(
    rf"""(?:^|\s)(?:-u|--user)(?:=|{_SP}{{0,5}})"""
    rf"""({_QUOTED}|(?:{_QUOTED}|[\w$@.-]+):(?:{_QUOTED}|[\w${{}}@.-]+))"""
)
_CURL_HEADER: Final = re.compile(
    rf"""(?i)(?:-H|--header)(?:=|{_SP}{{0,5}})(\\?["'])"""
    rf"""(?:authorization:{_SP}*(?:(?:basic|bearer|(?:api-)?token)[ \t]+)?"""
    rf"""|(?:x-(?:[a-z]+-)?)?(?:api-?)?(?:key|token):{_SP}*)([^"'\n]{{4,}}?)[ \t]*\1"""
)
# NuGet's <add key="Password" value="..."/>.
_XML_PASSWORD: Final = re.compile(
    r"""(?i)<add key=\\?"(?:cleartext)?password\\?"(?:\s|\\[tnr])*"""
    r"""value=\\?"((?:[^"\\]|\\[^"]){4,})"""
)
# Freemius' PHP configuration: 'secret_key' => 'sk_...' (any 29 characters but spaces).
_FREEMIUS: Final = re.compile(
    r"""(?i)\\?["']secret_key\\?["'](?:\s|\\t)*=>(?:\s|\\t)*\\?["'](sk_\S{29})\\?["']"""
)


def others(text: str, add: Callable[[Span], object]) -> None:
    """Call *add* with the span of each secret in a curl, NuGet or Freemius snippet."""
    if "curl" in text:
        for m in _CURL_USER.finditer(text):
            add(m.span(1))
        for m in _CURL_HEADER.finditer(text):
            add(m.span(2))
    if "<" in text:
        for m in _XML_PASSWORD.finditer(text):
            add(m.span(1))
    if "=>" in text:
        for m in _FREEMIUS.finditer(text):
            add(m.span(1))
