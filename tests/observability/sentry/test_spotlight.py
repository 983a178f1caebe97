"""Spotlight: a sidecar that hangs never holds the thread that captured an event.

No Spotlight sidecar runs here (its command-line sidecar sends telemetry to an outside
address): a socket on 127.0.0.1 that accepts connections and never answers stands in for a
hung one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk
import urllib3

from mina.logging_config import current_redactor
from mina.observability.sentry import close_sentry, init_sentry
from mina.observability.sentry.sdk import SPOTLIGHT_TIMEOUT
from mina.settings import Settings
from tests.observability.sentry.test_transport import wait_for

BOUND = 20.0  # seconds a test waits for a capture before calling it hung


@pytest.fixture
def hung_sidecar() -> Iterator[str]:
    """A URL whose server accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/stream"
    stop.set()
    thread.join(BOUND)
    for conn in accepted:
        conn.close()
    server.close()


def test_a_hung_sidecar_does_not_hold_the_capturing_thread(
    hung_sidecar: str, tmp_path: Path
) -> None:
    init_sentry(
        Settings(sentry_spotlight=hung_sidecar, sentry_outbox=tmp_path / "outbox"),
        current_redactor(),
    )
    done = threading.Event()

    def capture() -> None:
        sentry_sdk.capture_message("to spotlight", level="error")
        done.set()

    threading.Thread(target=capture, daemon=True).start()
    try:
        assert done.wait(BOUND), "capture_message still waits for the hung sidecar"
        pending = tmp_path / "outbox" / "pending"
        # The event worker sends to the sidecar (bounded), then writes Sentry's copy.
        wait_for(lambda: pending.is_dir() and any(pending.iterdir()), timeout=5 * SPOTLIGHT_TIMEOUT)
        [kept] = list(pending.iterdir())
        assert kept.name.startswith("e")
    finally:
        close_sentry()


def test_the_sidecar_sender_has_mina_s_timeout_and_no_retries(tmp_path: Path) -> None:
    # Pins the SDK's private client.spotlight.http that bound_spotlight replaces.
    init_sentry(
        Settings(sentry_spotlight="http://127.0.0.1:9/stream", sentry_outbox=tmp_path / "o"),
        current_redactor(),
    )
    try:
        http = sentry_sdk.get_client().spotlight.http  # type: ignore[attr-defined]
        assert isinstance(http, urllib3.PoolManager)
        assert SPOTLIGHT_TIMEOUT == http.connection_pool_kw["timeout"].total
        assert False is http.connection_pool_kw["retries"].total
    finally:
        close_sentry()
