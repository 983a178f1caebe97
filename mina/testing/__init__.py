"""Testing helpers for code built on Mina.

- `SentryIngest`: a real local Sentry-protocol ingest the SDK's own transport sends to;
- `capture_pipeline` / `CapturedLogs`: the lines Mina's pipeline writes, after the whole
  chain (redaction included);
- `mina.testing.plugin`: pytest fixtures built on both (``sentry_ingest``,
  ``captured_logs``, ``mina_logging``, ``mina_sentry``), registered when Mina is installed.

Importing this package loads neither Flask nor the app.
"""

from __future__ import annotations

from mina.testing.ingest import Envelope, Item, Request, SentryIngest, parse_envelope
from mina.testing.logs import CapturedLogs, capture_pipeline

__all__ = [
    "CapturedLogs",
    "Envelope",
    "Item",
    "Request",
    "SentryIngest",
    "capture_pipeline",
    "parse_envelope",
]
