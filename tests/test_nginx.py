"""Behind nginx: the shipped configuration holds /healthz while clients stall.

`examples/nginx/mina.conf` runs in a real nginx (its own process, a generated nginx.conf
in tmp_path, unprivileged, on free loopback ports) in front of real gunicorn with Mina's
settings (2 workers x 4 threads, as `mina serve`), but with gunicorn's stock ``gthread``
worker, which stalled clients starve (Mina's own worker resists them, see
tests/test_gunicorn_worker.py): what holds here is nginx's doing. Stalled clients send half
a request head and wait: nginx must keep them away from gunicorn's threads.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.slow_clients import HALF_HEAD, Stallers, probe

from .support import NGINX, Nginx, Server, missing_tool_reason, wait_http

# Skipped without nginx, naming the package; in CI (which installs it) that skip fails.
pytestmark = pytest.mark.skipif(NGINX is None, reason=missing_tool_reason("nginx", "nginx"))


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[Server, Nginx]]:
    """Mina under gunicorn, behind the shipped nginx configuration."""
    server = Server(
        {
            "MINA_DATABASE": str(tmp_path / "mina.sqlite3"),
            "MINA_SENTRY_OUTBOX": str(tmp_path / "outbox"),
            "SENTRY_ENVIRONMENT": "production",
            "MINA_TRUSTED_PROXIES": "1",
            "LOG_FORMAT": "json",
        },
        options=("--worker-class", "gthread"),
    )
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    nginx = Nginx(nginx_dir, server.port)
    try:
        wait_http(f"{nginx.url}/healthz", timeout=30)
        yield server, nginx
    finally:
        nginx_log = nginx.stop()
        server.stop()
    assert "[emerg]" not in nginx_log and "[alert]" not in nginx_log, nginx_log


@pytest.mark.parametrize("stalled", [8, 32])
def test_healthz_answers_within_a_second_while_clients_stall(
    behind_nginx: tuple[Server, Nginx], stalled: int
) -> None:
    server, nginx = behind_nginx
    # First: without nginx the same gunicorn is starved by these connections, so the
    # measurement below would notice a front that passes them through.
    with Stallers(server.port, 8):
        direct = [probe(f"{server.url}/healthz", 1.0) for _ in range(8)]
    assert None in direct

    with Stallers(nginx.port, stalled):
        answered = [probe(f"{nginx.url}/healthz", 1.0) for _ in range(40)]

    # The bar is 95%; a loaded test machine may delay a probe or two.
    assert sum(took is not None for took in answered) >= 38, answered


def test_requests_pass_through_with_the_client_address_and_request_id(
    behind_nginx: tuple[Server, Nginx],
) -> None:
    server, nginx = behind_nginx
    request = urllib.request.Request(f"{nginx.url}/healthz", headers={"X-Request-ID": "r-nginx-1"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert (200, "r-nginx-1") == (response.status, response.headers["X-Request-ID"])
    lines, _ = server.stop()
    [finished] = [
        line
        for line in lines
        if line.get("event") == "request.finished" and line.get("request_id") == "r-nginx-1"
    ]
    assert ("/healthz", 200) == (finished["path"], finished["status"])


def test_a_stalled_head_is_closed_by_nginx_not_held(behind_nginx: tuple[Server, Nginx]) -> None:
    _, nginx = behind_nginx
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=30) as sock:
        sock.sendall(HALF_HEAD)
        # client_header_timeout (10 s): nginx closes it, well before this socket's 30 s.
        assert b"" == sock.recv(4096)
