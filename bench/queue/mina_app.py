"""Dramatiq on Mina's own SQLite broker (`mina.jobs.sqlite_broker`), embedded only.

Its lease is ``$BENCH_QUEUE_REDELIVER_S``, like the other candidates' redelivery timeouts.
"""

from __future__ import annotations

import os
from pathlib import Path

import dramatiq

from bench.queue.jobs import record
from mina.jobs.sqlite_broker import SQLiteBroker

broker = SQLiteBroker(
    Path(os.environ["BENCH_QUEUE_DIR"]) / "mina-queue.sqlite3",
    lease_s=float(os.environ.get("BENCH_QUEUE_REDELIVER_S", "5")),
)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=3)
def run(key: str, t_enq: float, work_ms: float) -> None:
    """The benchmark job."""
    record(key, t_enq, work_ms)


def enqueue(key: str, t_enq: float, work_ms: float) -> None:
    """Enqueue one job."""
    run.send(key, t_enq, work_ms)
