"""Real processes: an app SIGKILLed mid-outage and a restart deliver everything once;
gunicorn stopped during an outage leaves its outbox for the next start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mina.testing import SentryIngest
from tests.support import ROOT, Server

from .test_transport import wait_for

APP = """
import json, sys, time
import sentry_sdk
from mina.logging_config import configure_logging
from mina.observability.sentry import init_sentry
from mina.settings import Settings

settings = Settings.from_env()
init_sentry(settings, configure_logging(settings))
if sys.argv[1] == "capture":
    ids = [sentry_sdk.capture_message(f"outage {i}", level="error") for i in range(10)]
    print(json.dumps(ids), flush=True)
time.sleep(60)
"""


def get_json(url: str) -> dict[str, Any]:
    """GET *url*; its JSON body."""
    with urllib.request.urlopen(url, timeout=10) as response:
        body: dict[str, Any] = json.load(response)
    return body


def _app(mode: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", APP, mode],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_outage_then_a_restart_delivers_every_event_once(
    sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    env = {"SENTRY_DSN": sentry_ingest.dsn, "MINA_SENTRY_OUTBOX": str(outbox)}
    sentry_ingest.respond_with(hang=True)
    first = _app("capture", {**env, "MINA_SENTRY_TIMEOUT": "30"})
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        while not line.startswith("["):  # the app's own log lines come first
            line = first.stdout.readline()
        captured = json.loads(line)

        def kept_now() -> int:
            parts = (outbox / "pending", outbox / "sending")
            return sum(len(list(part.iterdir())) for part in parts if part.is_dir())

        # Every event in the outbox (written by the event worker just after each capture),
        # and the sender inside a request Sentry never answers when the app dies.
        sending = outbox / "sending"
        wait_for(
            lambda: kept_now() == 10 and sending.is_dir() and len(list(sending.iterdir())) == 1
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    kept = len(list((outbox / "pending").iterdir())) + len(list((outbox / "sending").iterdir()))
    sentry_ingest.respond_with()

    second = _app("resume", env)
    try:
        sentry_ingest.wait(lambda ingest: len(ingest.accepted_events) >= 10, timeout=20)
        wait_for(lambda: not list((outbox / "pending").iterdir()))
    finally:
        second.kill()
        second.wait(timeout=10)

    assert 10 == kept
    assert sorted(captured) == sorted(e["event_id"] for e in sentry_ingest.accepted_events)


def test_gunicorn_stopped_during_an_outage_leaves_the_rest_for_the_next_start(
    gunicorn: Callable[..., Server], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    env = {
        "SENTRY_DSN": sentry_ingest.dsn,
        "MINA_SENTRY_OUTBOX": str(outbox),
        "MINA_SENTRY_TIMEOUT": "0.5",
        "SENTRY_TRACES_SAMPLE_RATE": "0",
    }
    sentry_ingest.respond_with(hang=True)
    server = gunicorn(env, workers=2, threads=2)
    ids = []
    for _ in range(5):
        body = get_json(server.url + "/api/test-sentry-error")
        ids += [body["message_event_id"], body["error_event_id"]]
    lines, stderr = server.stop()  # SIGTERM: each worker flushes for at most 2 s

    left = list((outbox / "pending").iterdir()) + list((outbox / "sending").iterdir())
    sentry_ingest.respond_with()
    again = gunicorn(env, workers=1, threads=1)
    sentry_ingest.wait(lambda ingest: len(ingest.accepted_events) >= 10, timeout=20)
    again.stop()

    assert 10 == len([path for path in left if path.name.startswith("e")])  # + sessions
    assert sorted(ids) == sorted(e["event_id"] for e in sentry_ingest.accepted_events)
    assert [] == [line for line in lines if line["logger"].startswith("urllib3")]
    assert "" == stderr
