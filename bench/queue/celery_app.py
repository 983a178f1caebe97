"""Celery: kombu's SQLAlchemy transport on SQLite embedded, the Redis transport on Redis.

Configured for at-least-once: ``acks_late`` (ack after the task ran) and
``reject_on_worker_lost`` (a prefork child that dies requeues its task), one task
prefetched, and a visibility timeout of ``$BENCH_QUEUE_REDELIVER_S`` (Redis transport:
an unacked message becomes visible again after it; kombu's default is one hour), swept
for every second (kombu's default: every 100 s).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery

from bench.queue.jobs import record

_url = os.environ.get("BENCH_QUEUE_URL") or (
    f"sqla+sqlite:///{Path(os.environ['BENCH_QUEUE_DIR']) / 'celery.db'}"
)
app = Celery("bench", broker=_url)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue="bench",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if os.environ.get("BENCH_QUEUE_URL"):
    app.conf.broker_transport_options = {
        "visibility_timeout": float(os.environ.get("BENCH_QUEUE_REDELIVER_S", "5")),
        # kombu sweeps for expired unacked messages every 10 s x 10 by default.
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
else:
    # The SQLAlchemy transport polls, every second by default; it passes its transport
    # options to SQLAlchemy's create_engine, so the interval is set on the class.
    from kombu.transport.sqlalchemy import Transport

    Transport.polling_interval = 0.05


@app.task(name="bench.run")
def run(key: str, t_enq: float, work_ms: float) -> None:
    """The benchmark job."""
    record(key, t_enq, work_ms)


def enqueue(key: str, t_enq: float, work_ms: float) -> None:
    """Enqueue one job."""
    run.delay(key, t_enq, work_ms)
