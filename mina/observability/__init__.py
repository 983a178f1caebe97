"""Mina's observability: the one pipeline from a log call to stdout and Sentry.

Read it in the order a line travels:

- `mina.logging_config` assembles the pipeline (start here);
- `mina.observability.context` binds request, user and meeting context, keyed by the
  registry in `mina.observability.schema`;
- `mina.observability.processors` holds each structlog processor;
- `mina.redaction` (a pure package) removes secrets;
- `mina.observability.formatters` writes the stdout JSON line;
- `mina.observability.sentry` holds Sentry's options and hooks;
- `mina.observability.flask` is the request-logging Flask extension;
- `mina.observability.tracing` carries context into spans (`mina.jobs` into queued jobs).
"""
