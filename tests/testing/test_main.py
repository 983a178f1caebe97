"""``python -m mina.testing``: the local ingest on its own, printing what arrives."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import IO

from tests.support import free_port

SCRIPT = textwrap.dedent(
    """
    import sentry_sdk
    import mina

    mina.get_logger("watch").error("invoice.failed", invoice="inv-7")
    sentry_sdk.flush(timeout=5)
    """
)


def _lines(stream: IO[str] | None) -> queue.Queue[str]:
    """The lines of *stream*, read on a thread, so a test waits for one with a timeout."""
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_it_serves_on_the_port_given_and_prints_each_event(tmp_path: Path) -> None:
    port = free_port()
    key = "0123456789abcdef0123456789abcdef"
    ingest = subprocess.Popen(
        [sys.executable, "-m", "mina.testing", "--port", str(port), "--key", key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = _lines(ingest.stdout)
    try:
        dsn = f"http://{key}@127.0.0.1:{port}/1"
        assert f"listening; send events with SENTRY_DSN={dsn}" == lines.get(timeout=30)
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            env={**os.environ, "SENTRY_DSN": dsn, "SENTRY_TRACES_SAMPLE_RATE": "0"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == done.returncode, done.stderr
        [kind, event_id, level, message] = lines.get(timeout=30).split(" ", 3)
        assert ("event", 32, "error", "invoice.failed") == (kind, len(event_id), level, message)
    finally:
        ingest.send_signal(signal.SIGTERM)
        assert 0 == ingest.wait(timeout=10)
        assert ingest.stderr is not None and "" == ingest.stderr.read()


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mina.testing", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert 1 == done.returncode
    assert [
        f"python -m mina.testing: cannot listen on 127.0.0.1:{port}: Address already in use;"
        " choose another port with --port"
    ] == done.stderr.splitlines()
