"""A Dramatiq worker whose jobs fail into Sentry, for `bench.queue.sentry_exit`.

``$BENCH_SENTRY_FLUSH=1`` adds a middleware that flushes Sentry when the worker process
shuts down; without it, what Sentry still holds when the process exits is all there is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dramatiq
import sentry_sdk
from dramatiq.middleware import Middleware
from sentry_sdk.integrations.dramatiq import DramatiqIntegration

from mina.jobs.sqlite_broker import SQLiteBroker

sentry_sdk.init(dsn=os.environ["BENCH_SENTRY_DSN"], integrations=[DramatiqIntegration()])


class FlushSentry(Middleware):
    """Flush Sentry before a worker process ends (Dramatiq ends it with ``os._exit``)."""

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        """Send what Sentry still holds, for at most 10 s."""
        sentry_sdk.flush(timeout=10)


broker = SQLiteBroker(Path(os.environ["BENCH_QUEUE_DIR"]) / "sentry-queue.sqlite3")
if os.environ.get("BENCH_SENTRY_FLUSH") == "1":
    broker.add_middleware(FlushSentry())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def fail(n: int) -> None:
    """Fail: one Sentry event per job."""
    raise ValueError(f"job {n} failed")
