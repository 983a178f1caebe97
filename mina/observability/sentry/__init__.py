"""Sentry for Mina: options validated once, hooks that fail closed, one redactor."""

from __future__ import annotations

from mina.observability.sentry.options import init_sentry, sentry_options
from mina.observability.sentry.sdk import MinaLoggingIntegration

__all__ = ["MinaLoggingIntegration", "init_sentry", "sentry_options"]
