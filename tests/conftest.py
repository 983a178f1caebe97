"""Shared fixtures: a real local Sentry ingest, the pipeline writing to a captured stream."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import pytest
import sentry_sdk

import mina.observability.sentry.options
from mina.logging_config import configure_logging
from mina.observability import context
from mina.observability.pipeline import PIPELINE
from mina.redaction import Redactor
from mina.settings import Settings
from mina.testing import SentryIngest

ROOT = Path(__file__).resolve().parent.parent
_FORMATS = {1: "B", 2: "h", 4: "i"}


def make_wav(samples: list[int], *, width: int = 2, channels: int = 1, rate: int = 16000) -> bytes:
    """A PCM WAV file holding *samples* (interleaved, already in the width's range)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(struct.pack(f"<{len(samples)}{_FORMATS[width]}", *samples))
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test starts with no bound context, no Sentry client, and none of the developer's
    SENTRY_* / LOG_* / MINA_* variables or proxies."""
    for name in list(os.environ):
        if name.startswith(("SENTRY_", "LOG_", "MINA_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MINA_DATABASE", str(tmp_path / "mina.sqlite3"))
    context.clear()  # log context bound by an earlier test on this thread
    with sentry_sdk.isolation_scope():
        yield
    context.clear()
    if PIPELINE.send_pii:  # the policy is the pipeline's: back to the default for the next test
        configure_logging(Settings(), force=True)
        logging.getLogger().handlers.clear()
    # No Sentry client leaks into the next test; a closed client flushes first.
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)
    mina.observability.sentry.options._initialized = None


@pytest.fixture
def sentry_ingest() -> Iterator[SentryIngest]:
    """A started local Sentry-protocol ingest on 127.0.0.1, stopped afterwards."""
    with SentryIngest() as ingest:
        yield ingest


class Lines:
    """The JSON lines the pipeline wrote to an in-memory stdout."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        """Everything written so far."""
        return self.stream.getvalue()

    def all(self) -> list[dict[str, Any]]:
        """Every line, parsed (fails the test if one is not a JSON object)."""
        return [json.loads(line) for line in self.text.splitlines()]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The lines whose ``event`` is *name*."""
        return [line for line in self.all() if line.get("event") == name]


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Lines]:
    """Build the pipeline (forced) with settings overrides; stdout goes to a buffer."""

    def build(**overrides: Any) -> Lines:
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stdout", stream)
        settings = replace(Settings.from_env(), **overrides)
        configure_logging(settings, force=True)
        return Lines(stream)

    yield build  # type: ignore[misc]
    logging.getLogger().handlers.clear()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Poll *url* until it answers, at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Server:
    """A real gunicorn serving Mina on 127.0.0.1, its stdout collected."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 2,
        threads: int = 4,
        app: str = "mina:create_app()",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            **env,
            "MINA_BIND": f"127.0.0.1:{self.port}",
            "MINA_WORKERS": str(workers),
            "MINA_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:mina.gunicorn_conf",
                app,
            ],
            env=full_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Drained continuously: a full pipe would block the server's writes (and with
        # them every request that logs) until the test reads.
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            for stream, sink in ((self.process.stdout, self._out), (self.process.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: IO[str] | None, sink: list[str]) -> None:
        assert stream is not None
        for line in stream:
            sink.append(line)

    def stop(self) -> tuple[list[dict[str, Any]], str]:
        """Stop gunicorn; return its stdout lines (parsed) and its stderr."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return [json.loads(line) for line in self._out], "".join(self._err)


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
