"""
pytest fixtures for code built on Mina, registered through the ``pytest11`` entry point.

Installing Mina makes them available in every test suite; a suite that requests none of
them is untouched (loading this module imports neither Flask, the app, nor sentry-sdk).

- ``sentry_ingest``: a started `mina.testing.SentryIngest`, stopped after the test.
- ``captured_logs``: Mina's pipeline built from the environment, its lines captured
  after the whole chain (redaction included), as a `mina.testing.CapturedLogs`.
- ``mina_logging``: a factory, ``mina_logging(**overrides) -> CapturedLogs``, for other
  settings (``log_level=logging.DEBUG``, ``send_pii=True``, ...).
- ``mina_sentry``: a factory like ``mina_logging`` that also starts Sentry, with Mina's
  options and hooks, pointed at ``sentry_ingest``.

Context bound during the test is forgotten afterwards; a Sentry client still pointed at
the ingest is flushed and closed before it stops. See ``docs/testing.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from mina.testing.ingest import SentryIngest
from mina.testing.logs import CapturedLogs, capture_pipeline

__all__ = ["PipelineFactory", "captured_logs", "mina_logging", "mina_sentry", "sentry_ingest"]

#: The type of the ``mina_logging`` and ``mina_sentry`` fixtures.
PipelineFactory = Callable[..., CapturedLogs]


@pytest.fixture
def sentry_ingest() -> Iterator[SentryIngest]:
    """A started local Sentry-protocol ingest on 127.0.0.1, stopped after the test.

    Point Sentry at ``sentry_ingest.dsn``; read what arrived with ``wait_for_events()``,
    ``wait_for_transactions()``, ``events`` or ``raw_bodies``. A Sentry client still
    sending to it when the test ends is flushed and closed first.
    """
    with SentryIngest() as ingest:
        try:
            yield ingest
        finally:
            _close_client_of(ingest)


@pytest.fixture
def mina_logging() -> Iterator[PipelineFactory]:
    """Build Mina's pipeline, forced, from the environment plus keyword overrides.

    Each call returns a new `mina.testing.CapturedLogs` holding the lines written from
    then on; the keywords are `mina.settings.Settings` fields. After the test the pipeline
    is rebuilt from the environment and bound context is cleared.
    """
    with ExitStack() as stack:

        def build(**overrides: Any) -> CapturedLogs:
            return stack.enter_context(capture_pipeline(**overrides))

        yield build
    _clear_context()


@pytest.fixture
def captured_logs(mina_logging: PipelineFactory) -> CapturedLogs:
    """The lines Mina's pipeline (built from the environment) writes during the test."""
    return mina_logging()


@pytest.fixture
def mina_sentry(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PipelineFactory]:
    """Like ``mina_logging``, and Sentry started with Mina's options, sending to the ingest.

    ``mina_sentry(traces_sample_rate=1.0)`` returns the captured lines; the events,
    transactions and breadcrumbs are in ``sentry_ingest``. The test runs in its own Sentry
    isolation scope; the client is flushed and closed afterwards.
    """
    import sentry_sdk

    # A proxy from the environment would be asked for 127.0.0.1 too.
    no_proxy = os.environ.get("no_proxy")
    monkeypatch.setenv("no_proxy", f"{no_proxy},127.0.0.1" if no_proxy else "127.0.0.1")

    def build(**overrides: Any) -> CapturedLogs:
        from dataclasses import replace

        from mina.logging_config import configure_logging
        from mina.observability.sentry import init_sentry
        from mina.settings import Settings

        overrides = {"sentry_dsn": sentry_ingest.dsn, **overrides}
        logs = mina_logging(**overrides)
        settings = replace(Settings.from_env(), **overrides)
        init_sentry(settings, configure_logging(settings))  # the redactor just built
        return logs

    with sentry_sdk.isolation_scope():
        yield build
        _close_client_of(sentry_ingest)


def _close_client_of(ingest: SentryIngest) -> None:
    import sentry_sdk

    client = sentry_sdk.get_client()
    if not client.is_active() or client.dsn != ingest.dsn:
        return
    options = sys.modules.get("mina.observability.sentry.options")
    if options is not None:
        options.close_sentry()  # also forgets it, so init_sentry starts afresh next time
    else:
        client.close(timeout=2)
        sentry_sdk.get_global_scope().set_client(None)


def _clear_context() -> None:
    context = sys.modules.get("mina.observability.context")
    if context is not None:  # never imported: nothing can be bound
        context.clear()
