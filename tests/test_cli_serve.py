"""``mina serve``: real gunicorn with Mina's config; ``make run`` uses it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from mina import cli
from mina.testing import SentryIngest
from tests.support import ROOT, free_port, wait_http


def test_serves_json_lines_and_shuts_down_gracefully_flushing_sentry(
    sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SENTRY_DSN": sentry_ingest.dsn,
        "MINA_WORKERS": "3",  # --workers wins
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "mina", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        sentry_ingest.respond_with(delay=0.3)  # slow Sentry: events still queued at SIGTERM
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/test-sentry-error") as answer:
            ids = json.load(answer)
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    reader.join(timeout=5)

    lines = [json.loads(line) for line in out]  # every line is JSON, gunicorn's too
    gunicorn = [line["event"] for line in lines if line["logger"] == "gunicorn.error"]
    assert f"Listening at: http://127.0.0.1:{port} ({process.pid})" in gunicorn
    assert 1 == sum(event.startswith("Booting worker") for event in gunicorn)
    assert "Shutting down: Master" == gunicorn[-1]
    received = {event["event_id"] for event in sentry_ingest.events}
    assert {ids["message_event_id"], ids["error_event_id"]} == received


def test_bad_option_values_are_usage_errors() -> None:
    result = CliRunner().invoke(cli.main, ["serve", "--threads", "0"])
    assert 2 == result.exit_code
    assert "Invalid value for '--threads': 0 is not in the range x>=1." in result.stderr


def test_make_run_is_mina_serve_honours_mina_bind_and_prints_only_json(tmp_path: Path) -> None:
    # A venv directory for make whose stamp is fresh (no install) and whose `mina` is
    # this one: the recipe itself runs for real.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "mina").symlink_to(Path(sys.executable).with_name("mina"))
    (venv / ".run-installed").touch()
    port = free_port()
    env = {**os.environ, "MINA_BIND": f"127.0.0.1:{port}", "MAKEFLAGS": "", "MINA_WORKERS": "1"}
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"VENV={venv}"],
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    reader.join(timeout=5)
    events = [json.loads(line)["event"] for line in out]  # nothing but JSON lines
    assert any(event.startswith(f"Listening at: http://127.0.0.1:{port} (") for event in events)
