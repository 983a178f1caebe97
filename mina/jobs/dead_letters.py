"""Dead letters of `mina.jobs.sqlite_broker`: listed and replayed on its SQLite file.

Functions of a connection, not of a broker, so an operator's command can read the queue
file without starting one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from dramatiq.message import Message

__all__ = ["DeadLetter", "dead_letters", "replay"]

#: Options that belong to one failed run; a replayed message starts without them.
_RUN_OPTIONS = ("retries", "traceback")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that failed for good, as an operator lists it.

    :param id: the row to pass to `replay`.
    :param message: the message as it failed (its ``options`` hold Dramatiq's
        ``retries`` and, from the ``Retries`` middleware, the ``traceback``).
    """

    id: int
    queue: str
    message: Message[Any]
    deliveries: int
    enqueued_at: float
    dead_at: float


def dead_letters(db: sqlite3.Connection, queue_name: str | None = None) -> list[DeadLetter]:
    """The dead letters of *queue_name* (of every queue when None), oldest first."""
    rows = db.execute(
        "SELECT id, queue, body, deliveries, enqueued_at, dead_at FROM dramatiq_messages"
        " WHERE state = 'dead' AND (? IS NULL OR queue = ?) ORDER BY id",
        (queue_name, queue_name),
    ).fetchall()
    return [
        DeadLetter(row[0], row[1], Message.decode(row[2].encode()), row[3], row[4], row[5])
        for row in rows
    ]


def replay(db: sqlite3.Connection, dead_letter_id: int) -> bool:
    """Queue a dead letter again, as new (no deliveries, no retries counted).

    :returns: False when *dead_letter_id* is not a dead letter (replayed already).
    """
    row = db.execute(
        "SELECT body FROM dramatiq_messages WHERE id = ? AND state = 'dead'", (dead_letter_id,)
    ).fetchone()
    if row is None:
        return False
    message = Message.decode(row[0].encode())
    options = {k: v for k, v in message.options.items() if k not in _RUN_OPTIONS}
    body = message._replace(options=options).encode().decode()  # copy() would merge them
    cursor = db.execute(
        "UPDATE dramatiq_messages SET state = 'queued', body = ?, deliveries = 0,"
        " dead_at = NULL, lease_owner = NULL, lease_until = NULL WHERE id = ? AND state = 'dead'",
        (body, dead_letter_id),
    )
    return cursor.rowcount == 1
