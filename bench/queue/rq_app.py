"""RQ (Redis only): jobs with ``Retry(max=3)`` and a ``job_timeout`` of
``$BENCH_QUEUE_REDELIVER_S``; the worker forks one work horse per job (RQ's default).
"""

from __future__ import annotations

import functools
import os

from redis import Redis
from rq import Queue, Retry

_url = os.environ.get("BENCH_QUEUE_URL") or ""


@functools.cache
def _queue() -> Queue:
    return Queue("bench", connection=Redis.from_url(_url))


def enqueue(key: str, t_enq: float, work_ms: float) -> None:
    """Enqueue one job."""
    _queue().enqueue(
        "bench.queue.jobs.record",
        key,
        t_enq,
        work_ms,
        retry=Retry(max=3),
        job_timeout=max(1, int(float(os.environ.get("BENCH_QUEUE_REDELIVER_S", "5")))),
    )
