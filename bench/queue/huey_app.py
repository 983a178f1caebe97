"""Huey: `SqliteHuey` embedded, `RedisHuey` on Redis. Worker: ``huey_consumer``."""

from __future__ import annotations

import os
from pathlib import Path

from huey import RedisHuey, SqliteHuey

from bench.queue.jobs import record

_url = os.environ.get("BENCH_QUEUE_URL")
huey = (
    RedisHuey("bench", url=_url, results=False)
    if _url
    else SqliteHuey("bench", filename=str(Path(os.environ["BENCH_QUEUE_DIR"]) / "huey.db"))
)


@huey.task(retries=3, retry_delay=1)
def run(key: str, t_enq: float, work_ms: float) -> None:
    """The benchmark job."""
    record(key, t_enq, work_ms)


def enqueue(key: str, t_enq: float, work_ms: float) -> None:
    """Enqueue one job."""
    run(key, t_enq, work_ms)
