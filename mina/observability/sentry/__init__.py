"""Sentry for Mina: options validated once, hooks that fail closed, one redactor."""

from __future__ import annotations

from mina.observability.sentry.options import close_sentry, init_sentry, sentry_options
from mina.observability.sentry.sdk import MinaLoggingIntegration

__all__ = ["MinaLoggingIntegration", "close_sentry", "init_sentry", "sentry_options"]
