"""Fixtures of Mina's own suite; the public ones come from Mina's pytest plugin.

``sentry_ingest``, ``captured_logs``, ``mina_logging`` and ``mina_sentry`` are
`mina.testing.plugin`'s, registered by the ``pytest11`` entry point; shared helpers that
are not fixtures live in `tests.support`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk

from mina.logging_config import configure_logging
from mina.observability import context
from mina.observability.pipeline import PIPELINE
from mina.observability.sentry import close_sentry
from mina.redaction import Redactor
from mina.settings import Settings

from .support import Server, pytest_runtest_makereport, wait_http

__all__ = ["pytest_runtest_makereport"]  # in CI, a missing system package fails (tests.support)

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts with no bound context, no Sentry client, and none of the developer's
    SENTRY_* / LOG_* / MINA_* variables or proxies.

    Everything a test (or a subprocess it starts) could write by default is under its own
    tmp_path: the instance folder, the database and the outbox, and HOME and the XDG
    directories, so nothing reads or writes the developer's data, whatever the working
    directory (`tests/test_isolation.py` checks the suite leaves a ``var/`` untouched)."""
    for name in list(os.environ):
        if name.startswith(("SENTRY_", "LOG_", "MINA_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    for name, path in {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_STATE_HOME": home / ".local" / "state",
        "XDG_CACHE_HOME": home / ".cache",
    }.items():
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv("MINA_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("MINA_DATABASE", str(tmp_path / "mina.sqlite3"))
    monkeypatch.setenv("MINA_SENTRY_OUTBOX", str(tmp_path / "sentry-outbox"))
    context.clear()  # log context bound by an earlier test on this thread
    with sentry_sdk.isolation_scope():
        yield
    context.clear()
    if PIPELINE.send_pii:  # the policy is the pipeline's: back to the default for the next test
        configure_logging(Settings(), force=True)
        logging.getLogger().handlers.clear()
    close_sentry()  # no Sentry client leaks into the next test; closing flushes first


@pytest.fixture
def gunicorn() -> Iterator[Callable[..., Server]]:
    """Start real gunicorn servers; each is stopped at teardown if the test did not."""
    servers: list[Server] = []

    def start(env: dict[str, str] | None = None, **kwargs: Any) -> Server:
        server = Server(env or {}, **kwargs)
        servers.append(server)
        try:
            wait_http(server.url + "/healthz")
        except OSError:
            _, err = server.stop()
            raise AssertionError(f"gunicorn did not start: {err[-2000:]}") from None
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=5)


@pytest.fixture(name="redactor")
def _redactor() -> Redactor:
    """A redactor with the default rules (PII off)."""
    return Redactor()
