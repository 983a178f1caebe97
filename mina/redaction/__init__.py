"""One redactor for everything that leaves the process: stdout JSON lines and Sentry.

`Redactor` removes secrets by *key* (a value stored under a key such as ``password`` or
``X-Api-Key``) and by *shape* (credentials recognisable inside any text: ``Bearer`` tokens,
JWTs, PEM private keys, URL passwords, ``token=`` pairs, card numbers, well-known API key
formats, and, unless PII may be sent, e-mail and client IP addresses). Every secret becomes
`REDACTED`, the only marker; the text around it is kept, so messages stay readable and errors
still group.

The package is pure (no Flask, no Sentry SDK, no app) and split by concern:

==========  ==================================================================
`keys`      word lists and key rules: secret, measure (``token_count``), label
            (``token_type``), id keys
`text`      text rules: ``name=value`` pairs, flags; `TextRedactor` holds
            the options and caches
`decode`    decoded views of encoded text (percent, ``+``, escapes, base64)
`pii`       e-mail and client IP addresses in text
`values`    where a pair's value ends (quoted, bracketed, bare); `REDACTED`
`shapes`    credentials found by their shape: JWTs, PEM keys, URL passwords, DSN
            keys, ``Bearer``, Mina tokens, and `vendors`' formats
`vendors`   the catalogue of vendors' credential formats (AWS, GitHub, Slack...)
`catalogue` vendor-named assignments and values beside a secret word
`cards`     payment card numbers (brand prefixes, lengths, Luhn)
`walk`      `Redactor`: values, mappings, sequences, objects, structlog events
==========  ==================================================================

Sentry's payloads (events, breadcrumbs, logs) are walked by
`mina.observability.sentry.payloads` with this same redactor.
"""

from __future__ import annotations

from mina.redaction.values import REDACTED
from mina.redaction.walk import CYCLE, MAX_DEPTH, Redactor, register_wrapper

__all__ = ["CYCLE", "MAX_DEPTH", "REDACTED", "Redactor", "register_wrapper"]
