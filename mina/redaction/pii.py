"""PII in text: e-mail addresses and client IP addresses (sent only with ``MINA_SEND_PII=1``).

Kept: a URL's ``user:password@host`` (its password is a credential shape, its user no
address), SSH remotes (``git@github.com:org/repo.git``), product versions
(``Chrome/57.0.0.0``) and the addresses servers print (``127.0.0.1``, ``::1``, ``0.0.0.0``).
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable
from typing import Final

from mina.redaction.shapes import Span

__all__ = ["personal_data"]

_EMAIL: Final = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
# What follows user@host in an SSH remote (scp syntax): ":org/repo.git", ":~/backups/".
_SSH_PATH: Final = re.compile(r":[\w.~\-]*(?:/|\.git(?![\w.\-]))")
# Not after "Name/": "Chrome/57.0.0.0" is a product's version (a URL's host follows "//").
_IPV4: Final = re.compile(r"(?<![\w.])(?<![A-Za-z]/)(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6: Final = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
_SERVER_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
)


def _client_ip(text: str) -> bool:
    # The addresses servers print ("listening on 127.0.0.1:5000", "bind 0.0.0.0") identify
    # nobody; any other one, other loopback addresses included, may be a client's.
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_unspecified or address in _SERVER_ADDRESSES)


def personal_data(text: str, authorities: list[Span], add: Callable[[Span], object]) -> None:
    """Call *add* with the span of every e-mail and client IP address in *text*.

    *authorities* are the spans of the URL authorities in *text*, in order
    (`mina.redaction.shapes.credentials`): an address inside one is a URL's user.
    """
    if "@" in text:
        starts = [a for a, _ in authorities]  # in order: bisect, not a scan
        for m in _EMAIL.finditer(text):
            i = bisect.bisect_right(starts, m.start()) - 1
            # Not a URL's user:password@, not an SSH remote's git@host:org/repo.
            in_url = i >= 0 and m.start() < authorities[i][1]
            if not in_url and _SSH_PATH.match(text, m.end()) is None:
                add(m.span())
    if text.count(".") >= 3:
        for m in _IPV4.finditer(text):
            if _client_ip(m.group()):
                add(m.span())
    if "::" in text or text.count(":") >= 5:
        for m in _IPV6.finditer(text):
            if _client_ip(m.group()):
                add(m.span())
