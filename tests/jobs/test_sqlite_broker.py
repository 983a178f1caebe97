"""mina.jobs.sqlite_broker: Dramatiq on one SQLite file, at least once after a SIGKILL.

Real Dramatiq workers run the jobs: in this process (threads) or in a child process that
the test kills with SIGKILL.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq import Worker

from mina.jobs.sqlite_broker import SQLiteBroker


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    """Wait until *predicate()* is true; fail after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def stored(path: Path) -> list[tuple[str, str, int]]:
    """The broker's rows as the file holds them: queue, state, deliveries."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT queue, state, deliveries FROM dramatiq_messages").fetchall()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[SQLiteBroker]:
    broker = SQLiteBroker(tmp_path / "queue.sqlite3", lease_s=1.0, poll_s=0.01)
    dramatiq.set_broker(broker)
    yield broker
    broker.close()


@pytest.fixture
def worker(broker: SQLiteBroker) -> Iterator[Worker]:
    worker = Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop(timeout=5000)


def test_every_job_runs_once_and_leaves_no_row(broker: SQLiteBroker, worker: Worker) -> None:
    done: list[int] = []

    @dramatiq.actor(broker=broker, queue_name="chunks")
    def process(n: int) -> None:
        done.append(n)

    for n in range(30):
        process.send(n)
    broker.join("chunks", timeout=20_000)

    assert list(range(30)) == sorted(done)
    assert [] == stored(broker.path)
    assert [] == broker.dead_letters()


def test_two_consumers_never_take_the_same_message(broker: SQLiteBroker) -> None:
    broker.declare_queue("chunks")
    for n in range(200):
        broker.enqueue(dramatiq.Message("chunks", "process", (n,), {}, {}))
    taken: list[list[int]] = [[], []]

    def take(into: list[int]) -> None:
        consumer = broker.consume("chunks", prefetch=1000, timeout=50)
        while (message := next(consumer)) is not None:
            into.append(message.args[0])

    threads = [threading.Thread(target=take, args=(into,)) for into in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert list(range(200)) == sorted(taken[0] + taken[1])


def test_a_failing_job_is_retried_with_backoff_then_dead_and_replayable(
    broker: SQLiteBroker, worker: Worker
) -> None:
    attempts: list[float] = []
    healed = threading.Event()

    @dramatiq.actor(broker=broker, queue_name="chunks", max_retries=2, min_backoff=100)
    def process(chunk: str) -> None:
        attempts.append(time.monotonic())
        if not healed.is_set():
            raise ValueError(f"cannot decode {chunk}")

    process.send("c-1")
    wait_for(lambda: broker.dead_letters("chunks"))

    [dead] = broker.dead_letters("chunks")
    assert ("chunks", "process", ("c-1",)) == (
        dead.queue,
        dead.message.actor_name,
        dead.message.args,
    )
    assert 3 == len(attempts)  # the first run and two retries
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(attempts))
    assert "ValueError: cannot decode c-1" in dead.message.options["traceback"]

    healed.set()
    assert broker.replay(dead.id)
    broker.join("chunks", timeout=20_000)
    assert (4, []) == (len(attempts), broker.dead_letters())
    assert not broker.replay(dead.id)


def test_prefetched_messages_go_back_without_counting_a_delivery(broker: SQLiteBroker) -> None:
    broker.declare_queue("chunks")
    broker.enqueue(dramatiq.Message("chunks", "process", (1,), {}, {}))
    consumer = broker.consume("chunks", prefetch=1, timeout=50)
    message = next(consumer)
    assert message is not None

    consumer.requeue([message])

    again = next(broker.consume("chunks", prefetch=1, timeout=50))
    assert again is not None and (1,) == again.args
    assert (
        1
        == broker._db()
        .__enter__()
        .execute("SELECT deliveries FROM dramatiq_messages")
        .fetchone()[0]
    )


def test_a_message_that_keeps_killing_its_worker_becomes_dead(tmp_path: Path) -> None:
    def worker_broker() -> SQLiteBroker:
        broker = SQLiteBroker(tmp_path / "q.sqlite3", lease_s=0.05, max_deliveries=2)
        broker.declare_queue("chunks")
        return broker

    worker_broker().enqueue(dramatiq.Message("chunks", "process", ("oom",), {}, {}))
    # Each worker takes the message and stops renewing its lease, as a killed one does.
    for _ in range(2):
        doomed = worker_broker()
        assert next(doomed.consume("chunks", prefetch=1, timeout=500)) is not None
        doomed.close()
        time.sleep(0.1)

    survivor = worker_broker()
    assert next(survivor.consume("chunks", prefetch=1, timeout=100)) is None
    [dead] = survivor.dead_letters()
    assert (("oom",), 2) == (dead.message.args, dead.deliveries)
    survivor.close()


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import dramatiq
    from dramatiq import Worker
    from mina.jobs.sqlite_broker import SQLiteBroker

    broker = SQLiteBroker(sys.argv[1], lease_s=1.0, poll_s=0.01)
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name="chunks")
    def process(n):
        with open(sys.argv[2], "a") as ledger:
            ledger.write(f"start {n}\\n")
        time.sleep(float(sys.argv[3]))
        with open(sys.argv[2], "a") as ledger:
            ledger.write(f"done {n}\\n")

    if sys.argv[4] == "send":
        for n in range(5):
            process.send(n)
    else:
        worker = Worker(broker, worker_timeout=50, worker_threads=1)
        worker.start()
        broker.join("chunks", timeout=30_000)
        worker.stop()
    """
)


def test_a_job_whose_worker_is_killed_runs_again_and_finishes(tmp_path: Path) -> None:
    script, queue, ledger = tmp_path / "w.py", tmp_path / "q.sqlite3", tmp_path / "ledger"
    script.write_text(WORKER)
    run = [sys.executable, str(script), str(queue), str(ledger)]
    subprocess.run([*run, "0", "send"], check=True, timeout=60)
    doomed = subprocess.Popen([*run, "30", "work"])
    try:
        wait_for(lambda: ledger.exists() and "start 0" in ledger.read_text())
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)

    subprocess.run([*run, "0", "work"], check=True, timeout=60)

    lines = ledger.read_text().splitlines()
    assert ["start 0", "start 0"] == [line for line in lines if line == "start 0"]
    assert [f"done {n}" for n in range(5)] == sorted(line for line in lines if "done" in line)
