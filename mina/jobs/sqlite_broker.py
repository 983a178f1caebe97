"""A Dramatiq broker in one SQLite file: Mina's embedded queue, needing no server.

Dramatiq's own brokers need a server (Redis, RabbitMQ); the SQLite brokers published for
it lose a job whose worker is killed (``docs/decisions/task-queue.md``). This one gives a
job the guarantee Dramatiq's `RedisBroker` gives it, at least once, with leases instead
of Redis's heartbeat sets:

- a consumer takes a message by writing a lease on its row (``lease_until``), in one
  statement, so two workers never take the same message;
- while the message runs, a thread of the worker process renews its leases every third
  of `SQLiteBroker.lease_s`; a worker that dies (SIGKILL, OOM, a lost host's disk
  reattached) stops renewing, and once the lease has run out any consumer takes the
  message again;
- ack deletes the row; nack (Dramatiq's ``Retries`` gave up) keeps it as a dead letter,
  with the message as it failed, for `SQLiteBroker.dead_letters` and `SQLiteBroker.replay`;
- a message delivered `SQLiteBroker.max_deliveries` times without an ack or nack (it
  kills its worker every time) becomes a dead letter instead of a crash loop.

Delays (retries' backoff, ``send_with_options(delay=...)``) use Dramatiq's delay queues
like every broker: the worker holds a message from ``<queue>.DQ`` until its ``eta``.
The file is in WAL mode with ``synchronous=NORMAL``: a killed process loses nothing
committed; a power cut may lose the last transactions.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from mina.jobs.dead_letters import DeadLetter, dead_letters, replay

__all__ = ["DeadLetter", "SQLiteBroker"]

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dramatiq_messages (
    id INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'leased', 'dead')),
    deliveries INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    enqueued_at REAL NOT NULL,
    dead_at REAL
);
CREATE INDEX IF NOT EXISTS dramatiq_messages_ready ON dramatiq_messages (queue, state, id);
"""


class SQLiteBroker(Broker):
    """A Dramatiq broker storing its queues in the SQLite file *path*.

    :param lease_s: how long a taken message stays someone's without a renewal; a killed
        worker's message runs again this long after its last renewal.
    :param max_deliveries: deliveries without an ack or nack before a message is dead.
    :param poll_s: how often an idle consumer looks for work (SQLite cannot notify
        another process): the upper bound of the queue latency an idle worker adds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease_s: float = 30.0,
        max_deliveries: int = 5,
        poll_s: float = 0.05,
        middleware: list[Middleware] | None = None,
    ) -> None:
        super().__init__(middleware=middleware)
        self.path = Path(path)
        self.lease_s, self.max_deliveries, self.poll_s = lease_s, max_deliveries, poll_s
        self._owner = (-1, "")
        self._local = threading.local()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewer_lock = threading.Lock()
        with self._db() as db:
            db.executescript(_SCHEMA)

    @property
    def owner(self) -> str:
        """This broker's name on the leases it writes: host, pid and a nonce.

        Made anew in each process (a broker created before a fork must not let one child
        renew a dead sibling's leases), with a nonce (a pid reused later is not the dead
        one, and two brokers of one process do not renew each other's leases).
        """
        pid = os.getpid()
        if self._owner[0] != pid:
            self._owner = (pid, f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}")
        return self._owner[1]

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread (sqlite3 connections are not shared across threads),
        # each statement its own transaction unless a caller opens one.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        yield conn

    # Broker ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop renewing leases and close this thread's connection."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 30000) -> Consumer:
        """A consumer of *queue_name* holding at most *prefetch* messages.

        :raises QueueNotFound: the queue was never declared.
        """
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)  # type: ignore[no-untyped-call]  # untyped upstream
        self._start_renewer()
        return _Consumer(self, queue_name, prefetch, timeout)

    def declare_queue(self, queue_name: str) -> None:
        """Declare *queue_name* and its delay queue (rows need no table of their own)."""
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        self.queues[queue_name] = None
        self.emit_after("declare_queue", queue_name)
        delayed = dq_name(queue_name)
        self.delay_queues.add(delayed)
        self.emit_after("declare_delay_queue", delayed)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        """Store *message*; with *delay* (ms), on the delay queue with its ``eta``.

        :raises QueueNotFound: the message's queue was never declared.
        """
        queue_name = message.queue_name
        if delay is not None:
            queue_name = dq_name(queue_name)
            message = message.copy(queue_name=queue_name, options={"eta": current_millis() + delay})
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)  # type: ignore[no-untyped-call]  # untyped upstream
        self.emit_before("enqueue", message, delay)
        with self._db() as db:
            db.execute(
                "INSERT INTO dramatiq_messages (queue, message_id, body, enqueued_at)"
                " VALUES (?, ?, ?, ?)",
                (queue_name, message.message_id, message.encode().decode(), time.time()),
            )
        self.emit_after("enqueue", message, delay)
        return message

    def flush(self, queue_name: str) -> None:
        """Drop the waiting and running messages of *queue_name* (dead letters stay)."""
        with self._db() as db:
            db.execute(
                "DELETE FROM dramatiq_messages WHERE queue IN (?, ?) AND state != 'dead'",
                (queue_name, dq_name(queue_name)),
            )

    def flush_all(self) -> None:
        """Drop the waiting and running messages of every declared queue."""
        for queue_name in self.queues:
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until *queue_name* and its delay queue hold no live message.

        :param timeout: milliseconds; None waits as long as it takes.
        :raises QueueJoinTimeout: the timeout passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        while self._live(queue_name):
            if deadline is not None and time.monotonic() > deadline:
                raise QueueJoinTimeout(queue_name)  # type: ignore[no-untyped-call]  # untyped upstream
            time.sleep(self.poll_s)

    def _live(self, queue_name: str) -> int:
        with self._db() as db:
            row = db.execute(
                "SELECT count(*) FROM dramatiq_messages WHERE queue IN (?, ?) AND state != 'dead'",
                (queue_name, dq_name(queue_name)),
            ).fetchone()
        return int(row[0])

    # Dead letters ----------------------------------------------------------------------

    def dead_letters(self, queue_name: str | None = None) -> list[DeadLetter]:
        """The dead letters of *queue_name* (of every queue when None), oldest first."""
        with self._db() as db:
            return dead_letters(db, queue_name)

    def counts(self) -> dict[tuple[str, str], int]:
        """Messages per (queue, state): ``queued``, ``leased`` (running) or ``dead``."""
        with self._db() as db:
            rows = db.execute(
                "SELECT queue, state, count(*) FROM dramatiq_messages GROUP BY queue, state"
                " ORDER BY queue, state"
            ).fetchall()
        return {(queue, state): count for queue, state, count in rows}

    def replay(self, dead_letter_id: int) -> bool:
        """Queue a dead letter again, as new; False when it is not one (any more)."""
        with self._db() as db:
            return replay(db, dead_letter_id)

    # Leases ----------------------------------------------------------------------------

    def _start_renewer(self) -> None:
        with self._renewer_lock:
            if self._renewer is None or not self._renewer.is_alive():
                self._stop.clear()
                self._renewer = threading.Thread(
                    target=self._renew_loop, name="mina-jobs-lease", daemon=True
                )
                self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with contextlib.suppress(sqlite3.Error):  # the next round tries again
                self.renew()

    def renew(self) -> int:
        """Extend every lease this process holds; return how many rows it renewed."""
        with self._db() as db:
            cursor = db.execute(
                "UPDATE dramatiq_messages SET lease_until = ?"
                " WHERE state = 'leased' AND lease_owner = ?",
                (time.time() + self.lease_s, self.owner),
            )
        return cursor.rowcount

    def _take(self, queue_name: str) -> tuple[int, Message[Any]] | None:
        now = time.time()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                # A message that exhausted its deliveries without an ack or nack dies
                # here, before anyone takes it again.
                db.execute(
                    "UPDATE dramatiq_messages SET state = 'dead', dead_at = ?, lease_owner = NULL"
                    " WHERE queue = ? AND state = 'leased' AND lease_until < ?"
                    " AND deliveries >= ?",
                    (now, queue_name, now, self.max_deliveries),
                )
                row = db.execute(
                    "UPDATE dramatiq_messages SET state = 'leased', lease_owner = ?,"
                    " lease_until = ?, deliveries = deliveries + 1"
                    " WHERE id = (SELECT id FROM dramatiq_messages WHERE queue = ?"
                    " AND (state = 'queued' OR (state = 'leased' AND lease_until < ?))"
                    " ORDER BY id LIMIT 1) RETURNING id, body",
                    (self.owner, now + self.lease_s, queue_name, now),
                ).fetchone()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if row is None:
            return None
        return row[0], Message.decode(row[1].encode())

    def _finish(self, row_id: int, message: Message[Any] | None) -> None:
        # Only the lease holder may finish a row: a worker that lost its lease (stalled
        # past lease_s while another took the message) must not delete the new run's row.
        with self._db() as db:
            if message is None:
                db.execute(
                    "DELETE FROM dramatiq_messages WHERE id = ? AND lease_owner = ?",
                    (row_id, self.owner),
                )
            else:
                db.execute(
                    "UPDATE dramatiq_messages SET state = 'dead', dead_at = ?, body = ?,"
                    " lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?",
                    (time.time(), message.encode().decode(), row_id, self.owner),
                )

    def _release(self, row_ids: Iterable[int]) -> None:
        with self._db() as db:
            db.executemany(
                "UPDATE dramatiq_messages SET state = 'queued', lease_owner = NULL,"
                " lease_until = NULL, deliveries = max(deliveries - 1, 0)"
                " WHERE id = ? AND lease_owner = ?",
                [(row_id, self.owner) for row_id in row_ids],
            )


class _Proxy(MessageProxy):
    """A taken message and the row it came from."""

    def __init__(self, message: Message[Any], row_id: int) -> None:
        super().__init__(message)
        self.row_id = row_id


class _Consumer(Consumer):
    # Dramatiq's worker threads ack and nack; its consumer thread takes and requeues.
    def __init__(self, broker: SQLiteBroker, queue_name: str, prefetch: int, timeout: int):
        self.broker, self.queue_name = broker, queue_name
        self.prefetch, self.timeout = prefetch, timeout
        self.held: set[int] = set()
        self.freed = threading.Condition()

    def _drop(self, row_ids: Iterable[int]) -> None:
        with self.freed:
            self.held.difference_update(row_ids)
            self.freed.notify_all()

    def ack(self, message: MessageProxy) -> None:
        row_id = _row(message)
        self.broker._finish(row_id, None)
        self._drop([row_id])

    def nack(self, message: MessageProxy) -> None:
        row_id = _row(message)
        self.broker._finish(row_id, message._message)
        self._drop([row_id])

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        # Prefetched and never started (the worker is stopping): queued again at once,
        # without counting as a delivery.
        row_ids = [_row(message) for message in messages]
        self.broker._release(row_ids)
        self._drop(row_ids)

    def __next__(self) -> MessageProxy | None:
        deadline = time.monotonic() + self.timeout / 1000
        while True:
            with self.freed:
                # All slots taken: wait for an ack rather than poll (the worker threads
                # ack as soon as a job ends).
                self.freed.wait_for(
                    lambda: len(self.held) < self.prefetch,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                full = len(self.held) >= self.prefetch
            if not full:
                taken = self.broker._take(self.queue_name)
                if taken is not None:
                    row_id, message = taken
                    with self.freed:
                        self.held.add(row_id)
                    return _Proxy(message, row_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not full:
                time.sleep(min(self.broker.poll_s, remaining))

    def close(self) -> None:
        # Held messages may still be running in the worker's threads: they are acked,
        # requeued by the worker, or taken again when their lease runs out.
        with self.freed:
            self.held.clear()


def _row(message: MessageProxy) -> int:
    if not isinstance(message, _Proxy):
        raise TypeError(f"not a message of this broker: {message!r}")
    return message.row_id
