"""A private redis-server for the Redis mode's tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import require_system_tool


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """``redis://127.0.0.1:<port>/0`` of a redis-server of this test, without persistence.

    Skipped without ``redis-server`` (Debian package ``redis-server``), except in CI.
    """
    server = require_system_tool("redis-server", package="redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    with (tmp_path / "redis.log").open("ab") as log:
        proc = subprocess.Popen([*argv, "--save", "", "--appendonly", "no"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
