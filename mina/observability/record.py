"""What a structlog call leaves on its stdlib `logging.LogRecord` for Mina's handlers.

The chain's last processor (`mina.observability.processors.RenderToLogKwargs`) puts one
`Rendered` on the record; the stdout formatters and Sentry's breadcrumb handler read it
back with `rendered`. That is the whole protocol between the structlog side and the
stdlib side. A record without one came from another library (werkzeug, gunicorn, a
plain ``logging.getLogger`` call) and goes through
`mina.observability.processors.ForeignRecord` instead.

Both mappings hold what the chain's redactor returned: handlers may ship them as they
are, without scanning them again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["BREADCRUMB_HINT", "BREADCRUMB_ONLY", "RECORD_ATTR", "Rendered", "rendered"]

#: The record attribute holding the `Rendered`. The leading underscore keeps it out of
#: Sentry's ``extra`` (the SDK skips private record attributes).
RECORD_ATTR: Final = "_mina"


#: A call key for a line that must not become a Sentry event at any level: a summary of a
#: failure that has its own event already (``request.finished`` of a 5xx). The chain
#: removes it from the line; pass it as ``**{BREADCRUMB_ONLY: True}``.
BREADCRUMB_ONLY: Final = "_mina_breadcrumb_only"

#: The breadcrumb hint key under which Mina's breadcrumb handler passes the `Rendered` a
#: breadcrumb's message and data were built from: Sentry's ``before_breadcrumb`` then
#: knows they are already redacted.
BREADCRUMB_HINT: Final = "mina_rendered"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A structlog call after the chain: redacted, ordered, ready to ship.

    :param line: the whole stdout line as a mapping, in schema order (head, context, the
        call's own keys); shared by every handler, never modified.
    :param call: the call's own keys only: Sentry's ``extra`` and breadcrumb ``data``
        (request-wide context reaches Sentry through its own fields instead).
    :param event: whether an ERROR record may become a Sentry event (see
        `BREADCRUMB_ONLY`).
    """

    line: Mapping[str, Any]
    call: Mapping[str, Any]
    event: bool = True


def rendered(record: logging.LogRecord) -> Rendered | None:
    """Return what the chain left on *record*, or None for a foreign record."""
    value = record.__dict__.get(RECORD_ATTR)
    return value if isinstance(value, Rendered) else None
