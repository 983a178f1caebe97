"""mina.jobs.broker: MINA_BROKER_URL names the broker; a bad value is one line, no secret."""

from __future__ import annotations

import threading
from pathlib import Path

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker

from mina.jobs.broker import REDELIVER_S, broker_from_url
from mina.jobs.sqlite_broker import SQLiteBroker
from mina.settings import ConfigError


@pytest.mark.parametrize("url", [None, "", "  "])
def test_unset_is_the_embedded_broker_on_the_given_file(url: str | None, tmp_path: Path) -> None:
    broker = broker_from_url(url, tmp_path / "jobs.sqlite3")

    assert isinstance(broker, SQLiteBroker)
    assert (tmp_path / "jobs.sqlite3", REDELIVER_S) == (broker.path, broker.lease_s)
    broker.close()


def test_a_redis_url_is_redis_with_mina_s_redelivery(tmp_path: Path) -> None:
    broker = broker_from_url("redis://:s3cret@10.0.0.7:6380/2", tmp_path / "unused.sqlite3")

    assert isinstance(broker, RedisBroker)
    pool = broker.client.connection_pool.connection_kwargs
    assert ("10.0.0.7", 6380, 2, "s3cret") == (
        pool["host"],
        pool["port"],
        pool["db"],
        pool["password"],
    )
    assert (REDELIVER_S * 1000, 100_000) == (broker.heartbeat_timeout, broker.maintenance_chance)
    assert not (tmp_path / "unused.sqlite3").exists()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("amqp://mina:s3cret@rabbit/", "expected redis://host:port/db"),
        ("redis://:s3cret@", "no host"),
        ("redis://:s3cret@cache:99999/0", "the port is not a number"),
        ("redis://:s3cret@cache:port/0", "the port is not a number"),
        ("redis://:s3cret@cache:6379/zero", "the database (the path) is not a number"),
        ("unix://", "unix:// needs the socket's path"),
    ],
)
def test_a_bad_url_stops_start_up_naming_the_variable(
    url: str, reason: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as raised:
        broker_from_url(url, tmp_path / "jobs.sqlite3")

    message = str(raised.value)
    assert message.startswith("MINA_BROKER_URL=") and "\n" not in message
    assert reason in message
    assert "s3cret" not in message


def test_jobs_run_through_a_real_redis(redis_url: str, tmp_path: Path) -> None:
    broker = broker_from_url(redis_url, tmp_path / "unused.sqlite3")
    done: list[int] = []
    lock = threading.Lock()

    @dramatiq.actor(broker=broker, queue_name="chunks")
    def process(n: int) -> None:
        with lock:
            done.append(n)

    for n in range(20):
        process.send(n)
    worker = Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        broker.join("chunks", timeout=20_000)
    finally:
        worker.stop(timeout=5000)
        broker.close()

    assert list(range(20)) == sorted(done)
