"""What Mina's tests share besides fixtures: a test app, WAV files, a real gunicorn.

`create_app` is Mina's app plus one test-only route, used in process and under real
gunicorn (``tests.support:create_app()``): ``/api/meetings/<meeting_id>/explode`` logs
``explode.requested`` on logger ``mina.test`` with ``nonce`` set to the request's
``X-Request-ID`` header, then fails. Each request thus produces a Sentry event whose
breadcrumbs, tags and user can be checked against the request that made it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import IO, Any, Final

import flask
import pytest
import sentry_sdk
import structlog
from dramatiq import Worker

import mina
from mina import auth, db
from mina.jobs.chunks import QUEUE, Jobs

ROOT = Path(__file__).resolve().parent.parent
#: A value that must never reach stdout or Sentry once redaction ran.
SECRET = "hunter2-s3cr3t-canary"
EXPLODE_LOGGER = "mina.test"
_FORMATS = {1: "B", 2: "h", 4: "i"}


def create_app(config: Mapping[str, Any] | None = None) -> flask.Flask:
    """Mina's app with the exploding route added."""
    app = mina.create_app(config)

    @app.get("/api/meetings/<meeting_id>/explode")
    @auth.login_required
    def explode(meeting_id: str) -> str:
        nonce = flask.request.headers.get("X-Request-ID")
        structlog.get_logger(EXPLODE_LOGGER).info("explode.requested", nonce=nonce)
        raise RuntimeError(f"exploded in {meeting_id}")

    return app


#: Every skip for a missing system package says this; in CI such a skip is a failure.
MISSING_SYSTEM_PACKAGE: Final = "requires system package"


def in_ci() -> bool:
    """Whether the suite runs in CI (``CI=true``, as GitHub, GitLab and `.ci/run` set it),
    where everything the suite needs is installed and a skip would hide a missing test."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_tool_reason(tool: str, package: str) -> str:
    """The skip reason for *tool* not being installed, naming its Debian *package*."""
    return (
        f"{MISSING_SYSTEM_PACKAGE} {package}: {tool} is not installed"
        f" (Debian: apt-get install {package}; .ci/run installs it)"
    )


def system_tool(tool: str) -> str | None:
    """The path of command *tool*: on PATH, or in the sbin directories Debian puts
    daemons in (``/usr/sbin/syslog-ng`` is not on a user's PATH); None when absent."""
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def require_system_tool(tool: str, *, package: str) -> str:
    """The path of *tool*, or skip the calling test with a reason naming *package*.

    For tests (and fixtures) that need a program the README does not list (syslog-ng,
    nginx, redis-server, ...): on a developer's machine they skip, saying what to install;
    in CI the skip is turned into a failure (`pytest_runtest_makereport`), since CI
    installs every such package (`.ci/run`). Module-level ``skipif`` marks get the same
    treatment when their reason is `missing_tool_reason`'s.
    """
    path = system_tool(tool)
    if path is None:
        pytest.skip(missing_tool_reason(tool, package))
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """In CI, a test skipped for a missing system package fails instead.

    Registered by the suite's conftest. The report keeps the skip's reason, so the failure
    says which package CI forgot to install.
    """
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and in_ci()):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if MISSING_SYSTEM_PACKAGE in reason:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), where it must run: {reason}"


def make_user(path: str, username: str, email: str | None = None) -> tuple[int, str]:
    """Create user *username* in the database at *path*; return its id and a token."""
    db.initialize(path)
    with closing(db.connect(path)) as conn:
        user = db.create_user(conn, username, email)
        return user.id, db.create_token(conn, user.id)


def make_wav(samples: list[int], *, width: int = 2, channels: int = 1, rate: int = 16000) -> bytes:
    """A PCM WAV file holding *samples* (interleaved, already in the width's range)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(struct.pack(f"<{len(samples)}{_FORMATS[width]}", *samples))
    return buffer.getvalue()


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Poll *url* until it answers, at most *timeout* seconds.

    A connection gunicorn accepted waits for a worker still booting (loading the app,
    initialising Sentry): the probe waits for that answer rather than asking again, so a
    test that counts requests sees exactly one.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=max(deadline - time.monotonic(), 0.1)):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


#: gunicorn with Mina's settings, as `mina serve` and `make run` start it (add the app).
GUNICORN: Final = [sys.executable, "-m", "gunicorn", "--config", "python:mina.gunicorn_conf"]
#: The same, serving Mina's app.
GUNICORN_APP: Final = [*GUNICORN, "mina:create_app()"]


class Server:
    """A real gunicorn serving Mina on 127.0.0.1, its stdout collected."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 2,
        threads: int = 4,
        app: str = "mina:create_app()",
        options: tuple[str, ...] = (),
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
            [*GUNICORN, *options, app],
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


def flush() -> None:
    """Send everything the Sentry client holds to the ingest now."""
    sentry_sdk.flush(timeout=5)


#: The shipped nginx configuration (`examples/nginx/mina.conf`).
NGINX_EXAMPLE: Final = ROOT / "examples" / "nginx" / "mina.conf"
#: Where nginx is, if installed (Debian puts it in /usr/sbin, often off a user's PATH).
NGINX: Final = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def nginx_config(directory: Path, listen_port: int, upstream_port: int) -> Path:
    """A whole nginx.conf under *directory* around the shipped example.

    The example is copied with only its two addresses replaced; everything nginx would
    write outside (pid, logs, request body and proxy temp files) goes to *directory*, so
    nginx runs unprivileged and leaves nothing behind.
    """
    text = NGINX_EXAMPLE.read_text()
    for old, new in (
        ("server 127.0.0.1:5000;", f"server 127.0.0.1:{upstream_port};"),
        ("listen 80;", f"listen 127.0.0.1:{listen_port};"),
    ):
        if text.count(old) != 1:
            raise ValueError(f"{NGINX_EXAMPLE} no longer has exactly one {old!r}")
        text = text.replace(old, new)
    (directory / "conf.d").mkdir(exist_ok=True)
    (directory / "conf.d" / "mina.conf").write_text(text)
    temp = {
        name: directory / "temp" / name
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    for path in temp.values():
        path.mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(
        f"""daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {directory / "conf.d" / "mina.conf"};
}}
"""
    )
    return config


class Nginx:
    """A real nginx in the foreground, configured by `nginx_config`, on 127.0.0.1."""

    def __init__(self, directory: Path, upstream_port: int) -> None:
        if NGINX is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = directory
        config = nginx_config(directory, self.port, upstream_port)
        # -e: the error log before the configuration is read (the default is root's).
        self.process = subprocess.Popen(
            [NGINX, "-p", str(directory), "-e", str(directory / "error.log"), "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> str:
        """Stop nginx (SIGQUIT: graceful); return its error log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        log = self.directory / "error.log"
        return log.read_text() if log.exists() else ""


def run_jobs(jobs: Jobs, timeout_s: float = 20.0) -> None:
    """Run *jobs*' queued chunk jobs (retries included) in this process, until none is left."""
    worker = Worker(jobs.broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        jobs.broker.join(QUEUE, timeout=int(timeout_s * 1000))
    finally:
        worker.stop()
