"""Does a Sentry event of a job survive the end of its worker process? ``python -m
bench.queue.sentry_exit``.

A local Sentry ingest (`mina.testing.SentryIngest`) answers each request after
``--delay`` seconds, as a slow Sentry would; ``--jobs`` jobs each raise into Sentry in one
Dramatiq worker process (`bench.queue.sentry_app`); once every job has failed, the worker
gets SIGTERM (a graceful stop) and exits. Counted: events that reached the ingest, without
and with a middleware that flushes Sentry in ``after_worker_shutdown``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mina.testing import SentryIngest


def run(ingest: SentryIngest, jobs: int, flush: bool) -> int:
    """Run one worker to the end; return how many of its *jobs* events arrived."""
    before = len(ingest.events)
    with tempfile.TemporaryDirectory(prefix="bench-sentry-exit-") as tmp:
        env = dict(
            os.environ,
            BENCH_QUEUE_DIR=tmp,
            BENCH_SENTRY_DSN=ingest.dsn,
            BENCH_SENTRY_FLUSH="1" if flush else "0",
        )
        send = f"from bench.queue.sentry_app import fail\nfor n in range({jobs}): fail.send(n)"
        subprocess.run([sys.executable, "-c", send], env=env, check=True, timeout=60)
        bin_dir = Path(sys.executable).parent
        argv = [str(bin_dir / "dramatiq"), "bench.queue.sentry_app", "-p", "1", "-t", "1"]
        worker = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            queue = Path(tmp) / "sentry-queue.sqlite3"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _dead(queue) < jobs:
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    time.sleep(1)  # anything still on its way
    return len(ingest.events) - before


def _dead(queue: Path) -> int:
    if not queue.exists():
        return 0
    with sqlite3.connect(queue) as conn:
        try:
            row = conn.execute(
                "SELECT count(*) FROM dramatiq_messages WHERE state = 'dead'"
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


def main() -> None:
    """Print the events that arrived, without and with the flushing middleware."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    with SentryIngest(delay=args.delay) as ingest:
        for flush in (False, True):
            arrived = run(ingest, args.jobs, flush)
            print(f"flush in after_worker_shutdown={flush}: {arrived} of {args.jobs} events")


if __name__ == "__main__":
    main()
