"""Dramatiq: dramatiq-sqlite's broker embedded, `RedisBroker` on Redis.

`RedisBroker` requeues the messages of a worker whose heartbeat is older than
``heartbeat_timeout`` (here ``$BENCH_QUEUE_REDELIVER_S``; dramatiq's default is 60 s),
in a maintenance step that runs on a random share of broker commands: 10 % here,
0.1 % by default (with it, an idle worker took longer than 20 s to requeue).
"""

from __future__ import annotations

import os
from pathlib import Path

import dramatiq

from bench.queue.jobs import record

_url = os.environ.get("BENCH_QUEUE_URL")
if _url:
    from dramatiq.brokers.redis import RedisBroker

    broker: dramatiq.Broker = RedisBroker(
        url=_url,
        maintenance_chance=100_000,  # of 1_000_000
        heartbeat_timeout=int(float(os.environ.get("BENCH_QUEUE_REDELIVER_S", "5")) * 1000),
    )
else:
    from dramatiq_sqlite import SQLiteBroker

    broker = SQLiteBroker(url=f"sqlite://{Path(os.environ['BENCH_QUEUE_DIR']) / 'dramatiq.db'}")
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=3)
def run(key: str, t_enq: float, work_ms: float) -> None:
    """The benchmark job."""
    record(key, t_enq, work_ms)


def enqueue(key: str, t_enq: float, work_ms: float) -> None:
    """Enqueue one job."""
    run.send(key, t_enq, work_ms)
