"""Mina's gunicorn worker (`mina.gunicorn_worker`), served by real gunicorn.

Stalled clients send half a request head and wait; stops are SIGTERM to the master and
Ctrl-C (SIGINT to the whole process group, as a terminal sends it), after errors, with
Sentry hung or absent and profiling on, and `mina serve`'s whole output is checked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.slow_clients import HALF_HEAD, Stallers, probe
from mina.gunicorn_worker import HEAD_TIMEOUT_SECONDS, STOP_SECONDS
from mina.testing import SentryIngest

from .support import ROOT, Server, free_port, make_user, wait_http


def env_for(tmp_path: Path) -> dict[str, str]:
    """Settings for a server whose files stay in *tmp_path*."""
    return {
        "MINA_DATABASE": str(tmp_path / "mina.sqlite3"),
        "MINA_SENTRY_OUTBOX": str(tmp_path / "outbox"),
        "SENTRY_ENVIRONMENT": "production",
        "LOG_FORMAT": "json",
    }


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """Mina under gunicorn with Mina's settings (2 workers x 4 threads, Mina's worker)."""
    started = Server(env_for(tmp_path))
    try:
        wait_http(f"{started.url}/healthz", timeout=30)
        yield started
    finally:
        started.stop()


def test_stock_gthread_is_starved_by_stalled_clients(tmp_path: Path) -> None:
    # What the worker fixes, so the test below would notice it coming back.
    stock = Server(env_for(tmp_path), options=("--worker-class", "gthread"))
    try:
        wait_http(f"{stock.url}/healthz", timeout=30)
        with Stallers(stock.port, 8):
            answered = [probe(f"{stock.url}/healthz", 1.0) for _ in range(8)]
    finally:
        stock.stop()
    assert None in answered


@pytest.mark.parametrize("stalled", [8, 32])
def test_healthz_answers_within_a_second_while_clients_stall(server: Server, stalled: int) -> None:
    with Stallers(server.port, stalled):
        answered = [probe(f"{server.url}/healthz", 1.0) for _ in range(40)]

    # The bar is 95%; a loaded test machine may delay a probe or two.
    assert sum(took is not None for took in answered) >= 38, answered


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    """The next response's status line and X-Request-ID from *sock* (bodies are small)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, bytes(buffer)
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    length = int(headers[b"Content-Length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    buffer[:] = rest[length:]
    return lines[0], headers[b"X-Request-ID"]


def test_a_head_in_pieces_and_pipelined_requests_are_served(server: Server) -> None:
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: piece-1\r\n\r\n"
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: piece-2\r\n\r\n"
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for start in range(0, len(first), 9):  # a slow but steady client
            sock.sendall(first[start : start + 9])
            time.sleep(0.05)
        assert (b"HTTP/1.1 200 OK", b"piece-1") == read_response(sock, buffer)
        sock.sendall(first.replace(b"piece-1", b"piece-3") + second)  # pipelined
        assert (b"HTTP/1.1 200 OK", b"piece-3") == read_response(sock, buffer)
        assert (b"HTTP/1.1 200 OK", b"piece-2") == read_response(sock, buffer)


def test_a_body_that_follows_its_head_later_is_read(server: Server, tmp_path: Path) -> None:
    _, token = make_user(str(tmp_path / "mina.sqlite3"), "ada")
    body = b'{"title": "Standup"}'
    head = (
        f"POST /api/meetings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "X-Request-ID: body-later\r\nConnection: close\r\n\r\n"
    ).encode()
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        time.sleep(0.3)
        sock.sendall(body)
        assert (b"HTTP/1.1 201 CREATED", b"body-later") == read_response(sock, buffer)


def test_an_unfinished_head_is_closed_after_the_head_timeout(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(HALF_HEAD)
        started = time.monotonic()
        assert b"" == sock.recv(4096)  # closed, nothing answered
        assert time.monotonic() - started >= HEAD_TIMEOUT_SECONDS - 1


class Served:
    """`mina serve` in its own process group (as from a terminal), output to a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "serve.log"
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")},
            **env_for(tmp_path),
            "SENTRY_ENVIRONMENT": "development",  # the test route, as a new user has it
            "MINA_BIND": f"127.0.0.1:{self.port}",
            **env,
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mina", "serve"],
                env=full_env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, how: str) -> float:
        """Stop it *how* (``term``: SIGTERM to the master; ``int``: Ctrl-C); the seconds."""
        started = time.monotonic()
        if how == "int":
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        return time.monotonic() - started

    def output(self) -> str:
        """Everything it wrote, stdout and stderr."""
        return self.log.read_text(errors="replace")


def get(url: str) -> int:
    """The status of ``GET url``."""
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize(
    "sentry",
    [
        "none",
        # Known regression, open in issue 17: since the outbox sends with several posters
        # while Sentry is slow, a stop with a hung Sentry takes 7.5-9.5 s, over STOP_SECONDS.
        pytest.param(
            "hung",
            marks=pytest.mark.xfail(reason="stop with a hung Sentry exceeds STOP_SECONDS"),
        ),
    ],
)
@pytest.mark.parametrize("how", ["term", "int"])
def test_a_stop_after_errors_is_prompt_and_never_a_sigkill(
    tmp_path: Path, how: str, sentry: str
) -> None:
    with SentryIngest() as ingest:
        ingest.respond_with(hang=True)  # accepts, never answers: the sender is mid-send
        env = {"SENTRY_TRACES_SAMPLE_RATE": "1.0", "SENTRY_PROFILES_SAMPLE_RATE": "1.0"}
        if sentry == "hung":
            env["SENTRY_DSN"] = ingest.dsn
        served = Served(tmp_path, env)
        try:
            wait_http(f"{served.url}/healthz", timeout=30)
            assert [200, 200, 200] == [get(f"{served.url}/api/test-sentry-error") for _ in "abc"]
            # A client in the middle of its request head, as a browser's spare connection.
            with socket.create_connection(("127.0.0.1", served.port)) as stalled:
                stalled.sendall(HALF_HEAD)
                time.sleep(0.3)
                took = served.stop(how)
        finally:
            if served.process.poll() is None:
                os.killpg(served.process.pid, signal.SIGKILL)
                served.process.wait(timeout=10)

    output = served.output()
    assert "SIGKILL" not in output, output
    assert 0 == served.process.returncode, output
    assert took < STOP_SECONDS, output


def test_a_request_stalled_mid_body_is_cut_before_the_masters_sigkill(tmp_path: Path) -> None:
    # gunicorn's graceful timeout shortened so the test is short; the worker keeps its
    # reserve for the exit flush out of it.
    served = Served(tmp_path, {"GUNICORN_CMD_ARGS": "--graceful-timeout 8"})
    _, token = make_user(str(tmp_path / "mina.sqlite3"), "ada")
    try:
        wait_http(f"{served.url}/healthz", timeout=30)
        with socket.create_connection(("127.0.0.1", served.port)) as stalled:
            stalled.sendall(
                b"POST /api/meetings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + token.encode() + b"\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            time.sleep(0.3)
            took = served.stop("term")
    finally:
        if served.process.poll() is None:
            os.killpg(served.process.pid, signal.SIGKILL)
            served.process.wait(timeout=10)

    output = served.output()
    assert "SIGKILL" not in output, output
    assert 0 == served.process.returncode, output
    assert took < 8, output


#: A gunicorn configuration: Mina's, plus a hook that makes the first worker receive a
#: quit signal while its main thread holds the thread pool's lock, as it does inside
#: ``ThreadPoolExecutor.submit`` (where py-spy found stuck workers after Ctrl-C under load).
QUIT_IN_SUBMIT_CONF = """
import os
import signal
import time
from pathlib import Path

from mina.gunicorn_conf import *  # noqa: F403

MARKER = Path({marker!r})


def post_worker_init(worker):
    if MARKER.exists():  # only the first worker: the master replaces it
        return
    MARKER.write_text(str(os.getpid()))
    with worker.tpool._shutdown_lock:  # what submit holds; private, hence only in a test
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1.0)  # the handler runs here, with the lock held
"""


def test_a_quit_while_the_main_thread_holds_the_pools_lock_ends_the_worker(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "first-worker.pid"
    conf = tmp_path / "quit_conf.py"
    conf.write_text(QUIT_IN_SUBMIT_CONF.format(marker=str(marker)))
    server = Server(env_for(tmp_path), workers=1, options=("--config", str(conf)))
    pid = None
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = int(marker.read_text())
        wait_http(f"{server.url}/healthz", timeout=30)  # served by the replacement
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker {pid} still alive: it deadlocked in its quit handler")
    finally:
        if pid is not None:  # a deadlocked worker outlives its master, holding stdout open
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        lines, _ = server.stop()
    events = [line["event"] for line in lines]
    assert f"Worker exiting (pid: {pid})" in events, events
    assert not [event for event in events if "SIGKILL" in event or "TIMEOUT" in event], events
