"""What of a request's context travels with a job, and how it is read back in the worker.

A job's message sits in a broker (a SQLite file, Redis) that operators read, back up and
share between hosts, so it carries as little as the worker needs to say whose work it is:

- the registered context keys that Sentry keeps as tags or user fields
  (`CARRIED_KEYS`: ``request_id``, ``route``, ``user_id``, ``username``, ``meeting_id``
  and, when ``MINA_SEND_PII=1``, ``user_email``), redacted by the process's `Redactor`.
  Request fields (``method``, ``path``, ``client_ip``, ``user_agent``) describe an HTTP
  connection the job does not have, and trace ids come from the trace headers instead;
  anything bound with `mina.observability.context.bind` stays in the request.
- Sentry's ``sentry-trace`` and the ``sentry-`` members of ``baggage``, so the job's
  transaction continues the request's trace. Other members of ``baggage`` came from the
  client and are not Mina's to store.

`encode` and `decode` are pure; the worker side checks again (keys, types, redaction),
because a message may come from an older Mina or from anyone who can write to the broker.
Neither raises: what does not fit is left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, unquote

import sentry_sdk
import structlog

from mina.observability.pipeline import PIPELINE
from mina.observability.schema import CONTEXT, ContextKey, SentryField
from mina.redaction import Redactor

__all__ = [
    "BAGGAGE_HEADER",
    "CARRIED_KEYS",
    "CONTEXT_HEADER",
    "MAX_VALUE",
    "TRACE_HEADER",
    "Carried",
    "capture",
    "decode",
    "encode",
]

#: The header holding the carried context, a JSON object.
CONTEXT_HEADER: Final = "mina-context"
#: Sentry's trace header (``<trace id>-<span id>-<sampled>``).
TRACE_HEADER: Final = "sentry-trace"
#: The W3C baggage header, reduced to its ``sentry-`` members.
BAGGAGE_HEADER: Final = "baggage"
#: Carried text is cut to this many characters (Sentry keeps 200 of a tag).
MAX_VALUE: Final = 200

_CARRIED: Final[dict[str, ContextKey]] = {
    key.name: key for key in CONTEXT if key.sentry in (SentryField.TAG, SentryField.USER)
}
#: The context keys a job carries, by name.
CARRIED_KEYS: Final = frozenset(_CARRIED)
_MAX_HEADER: Final = 4096  # a longer header is not Mina's: decode ignores it
_TOKEN: Final = re.compile(r"[A-Za-z0-9_.-]+")  # a baggage key Mina passes on


@dataclass(frozen=True, slots=True)
class Carried:
    """What a worker reads from a job's headers.

    :param context: carried context keys and values, ready for ``bind``.
    :param trace: ``sentry-trace`` and ``baggage`` for ``sentry_sdk.continue_trace``.
    """

    context: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, str] = field(default_factory=dict)


def _clean(context: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    # Registered keys only, of their registered type (bool is an int, but no user id),
    # personal ones only with consent; redacted as one mapping, so key rules apply too.
    kept: dict[str, Any] = {}
    for name, value in context.items():
        spec = _CARRIED.get(name) if isinstance(name, str) else None
        if spec is None or (spec.pii and not redactor.send_pii):
            continue
        if isinstance(value, bool) or not isinstance(value, spec.type):
            continue
        kept[name] = value[:MAX_VALUE] if isinstance(value, str) else value
    redacted = redactor.redact(kept)
    if not isinstance(redacted, dict):  # the redactor failed closed
        return {}
    # Redaction may grow a value (the marker is longer than what it replaced): cut again.
    return {k: v[:MAX_VALUE] if isinstance(v, str) else v for k, v in redacted.items()}


def _baggage(value: str, redactor: Redactor) -> str:
    # Members are percent-encoded (W3C baggage): redact the decoded value, encode it again.
    kept = []
    for member in value.split(","):
        key, sep, raw = member.strip().partition("=")
        if sep and key.startswith("sentry-") and _TOKEN.fullmatch(key):
            clean = redactor.redact_text(unquote(raw.split(";")[0]))
            kept.append(f"{key}={quote(clean, safe='')}")
    return ",".join(kept)


def _trace(headers: Mapping[str, Any], redactor: Redactor) -> dict[str, str]:
    trace: dict[str, str] = {}
    parent = headers.get(TRACE_HEADER)
    # <32 hex>-<16 hex>[-<0|1>]: anything else is not a trace header and is dropped.
    if isinstance(parent, str) and len(parent) <= 64:
        parts = parent.strip().split("-")
        if (
            len(parts) in (2, 3)
            and _hex(parts[0], 32)
            and _hex(parts[1], 16)
            and (len(parts) == 2 or parts[2] in ("0", "1"))
        ):
            trace[TRACE_HEADER] = "-".join(parts)
    baggage = headers.get(BAGGAGE_HEADER)
    if isinstance(baggage, str) and len(baggage) <= _MAX_HEADER:
        kept = _baggage(baggage, redactor)
        if kept:
            trace[BAGGAGE_HEADER] = kept
    return trace


def _hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def encode(
    context: Mapping[str, Any], trace: Mapping[str, Any], redactor: Redactor
) -> dict[str, str]:
    """Return a job's headers for *context* and *trace* (``sentry-trace``, ``baggage``).

    Only `CARRIED_KEYS` of *context*, of their registered types, redacted by *redactor*
    (personal keys only when it allows PII); the trace headers reduced to Sentry's.
    """
    headers = _trace(trace, redactor)
    carried = _clean(context, redactor)
    if carried:
        headers[CONTEXT_HEADER] = json.dumps(carried, separators=(",", ":"), sort_keys=True)
    return headers


def decode(headers: Mapping[str, Any] | None, redactor: Redactor) -> Carried:
    """Read what `encode` wrote, checking it again; anything else in *headers* is ignored."""
    if not isinstance(headers, Mapping):
        return Carried()
    context: dict[str, Any] = {}
    raw = headers.get(CONTEXT_HEADER)
    if isinstance(raw, str) and len(raw) <= _MAX_HEADER:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            context = _clean(parsed, redactor)
    return Carried(context=context, trace=_trace(headers, redactor))


def capture() -> dict[str, str]:
    """The headers for a job enqueued now: this context's carried keys and Sentry trace.

    Redacted by the process's configured redactor (``MINA_REDACT_KEYS``, ``MINA_SEND_PII``).
    """
    PIPELINE.ensure_configured()
    trace = {
        TRACE_HEADER: sentry_sdk.get_traceparent() or "",
        BAGGAGE_HEADER: sentry_sdk.get_baggage() or "",
    }
    return encode(structlog.contextvars.get_contextvars(), trace, PIPELINE.redactor)
