"""mina.jobs.middleware: a job's lines and Sentry data name the request that enqueued it.

Real Dramatiq workers (threads of this process) on the SQLite broker; lines are read
after Mina's whole pipeline and Sentry data at the local ingest.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
import sentry_sdk
from dramatiq import Worker

from mina.jobs.broker import broker_from_url
from mina.jobs.middleware import JobContext, install
from mina.jobs.sqlite_broker import SQLiteBroker
from mina.observability import context
from mina.observability.pipeline import get_logger
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

CANARY = "CyQ7s9dk2LmX0pPz4vB8"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[SQLiteBroker]:
    broker = SQLiteBroker(tmp_path / "queue.sqlite3", lease_s=2.0, poll_s=0.01)
    install(broker)
    yield broker
    broker.close()


def run_worker(broker: SQLiteBroker, queue: str = "chunks") -> None:
    """Run a worker until *queue* is empty."""
    worker = Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        broker.join(queue, timeout=20_000)
    finally:
        worker.stop(timeout=5000)


def stored_bodies(path: Path) -> str:
    """Every message body the broker's file holds."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return "\n".join(row[0] for row in conn.execute("SELECT body FROM dramatiq_messages"))


def in_request(send: Callable[[], None]) -> sentry_sdk.tracing.Transaction:
    """Call *send* as a request of user 7 on meeting m-1 would; return its transaction."""
    with sentry_sdk.isolation_scope():
        context.bind_request(request_id="req-7", method="POST", path="/api/meetings/m-1")
        context.bind_user(7, "ada")
        context.bind_meeting("m-1")
        context.bind(room_code="room-42")  # not a registered key: stays in the request
        with sentry_sdk.start_transaction(name="POST /api/meetings/m-1") as request:
            send()
    return request


def test_a_job_s_lines_and_transaction_continue_the_request(
    broker: SQLiteBroker, mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)

    @dramatiq.actor(broker=broker, queue_name="chunks")
    def process(chunk: str) -> None:
        get_logger("mina.chunks").info("chunk.processed", chunk=chunk)

    request = in_request(lambda: process.send("c-1"))
    run_worker(broker)
    sentry_sdk.flush()

    [done] = lines.events("chunk.processed")
    expected = {"request_id": "req-7", "user_id": 7, "username": "ada", "meeting_id": "m-1"}
    assert expected == {key: done.get(key) for key in expected}
    assert {"room_code", "method", "path"}.isdisjoint(done)
    [enqueued] = lines.events("job.enqueued")
    [started] = lines.events("job.started")
    [succeeded] = lines.events("job.succeeded")
    assert (enqueued["job_id"], "process") == (succeeded["job_id"], succeeded["task"])
    assert (1, 1, "req-7") == (started["attempt"], succeeded["attempt"], succeeded["request_id"])
    assert started["queue_ms"] >= 0 and succeeded["duration_ms"] >= 0
    by_name = {t["transaction"]: t for t in sentry_ingest.wait_for_transactions(2)}
    job = by_name["process"]
    assert (request.trace_id, "req-7") == (
        job["contexts"]["trace"]["trace_id"],
        job["tags"]["request_id"],
    )


def test_installing_twice_keeps_one_middleware(broker: SQLiteBroker) -> None:
    again = install(broker)

    assert [again] == [m for m in broker.middleware if isinstance(m, JobContext)]


def test_a_job_that_fails_for_good_is_one_event_with_the_request_s_tags(
    broker: SQLiteBroker, mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=0.0)

    @dramatiq.actor(broker=broker, queue_name="chunks", max_retries=1, min_backoff=10)
    def process(chunk: str) -> None:
        raise ConnectionError(f"postgres://mina:{CANARY}@db:5432/mina refused")

    in_request(lambda: process.send("c-1"))
    run_worker(broker)
    sentry_sdk.flush()

    [retried] = lines.events("job.retried")
    [failed] = lines.events("job.failed")
    assert (1, 2) == (retried["attempt"], failed["attempt"])
    assert ("ConnectionError", "req-7") == (retried["exception_type"], failed["request_id"])
    [event] = sentry_ingest.wait_for_events()
    assert ("job.failed", "req-7", "m-1") == (
        event["logentry"]["message"],
        event["tags"]["request_id"],
        event["tags"]["meeting_id"],
    )
    [dead] = broker.dead_letters()
    assert "ConnectionError: postgres://mina:[REDACTED]@db" in dead.message.options["traceback"]
    assert CANARY not in stored_bodies(broker.path)
    assert CANARY not in lines.text


def test_the_broker_stores_no_secret_of_the_request_s_context(
    broker: SQLiteBroker, mina_logging: PipelineFactory
) -> None:
    mina_logging()
    broker.declare_queue("chunks")

    @dramatiq.actor(broker=broker, queue_name="chunks")
    def process(chunk: str) -> None:
        pass

    with sentry_sdk.isolation_scope():
        context.bind_request(request_id=f"token={CANARY}", user_agent=CANARY)
        context.bind_user(7, f"Bearer {CANARY}")
        context.bind(api_key=CANARY)
        process.send("c-1")

    body = stored_bodies(broker.path)
    assert CANARY not in body
    carried = json.loads(json.loads(body)["options"]["mina"]["mina-context"])
    assert {"request_id": "token=[REDACTED]", "user_id": 7, "username": "Bearer [REDACTED]"} == (
        carried
    )


def test_redis_stores_no_secret_of_the_request_s_context(
    redis_url: str, tmp_path: Path, mina_logging: PipelineFactory
) -> None:
    mina_logging()
    broker = broker_from_url(redis_url, tmp_path / "unused.sqlite3")
    install(broker)

    @dramatiq.actor(broker=broker, queue_name="chunks")
    def process(chunk: str) -> None:
        pass

    with sentry_sdk.isolation_scope():
        context.bind_request(request_id=f"token={CANARY}", user_agent=CANARY)
        context.bind_user(7, f"Bearer {CANARY}")
        context.bind(api_key=CANARY)
        process.send("c-1")
    broker.close()

    client = redis.Redis.from_url(redis_url)
    stored = b""
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"hash":
            stored += b"".join(client.hvals(key))
        elif kind == b"list":
            stored += b"".join(client.lrange(key, 0, -1))
    client.close()
    assert b"c-1" in stored  # the message is there
    assert CANARY.encode() not in stored
