"""Testing helpers for code built on Mina: a local Sentry-protocol ingest."""

from __future__ import annotations

from mina.testing.ingest import Envelope, Item, Request, SentryIngest, parse_envelope

__all__ = ["Envelope", "Item", "Request", "SentryIngest", "parse_envelope"]
