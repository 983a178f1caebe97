"""The one job every candidate runs, and the SQLite ledger that counts its executions.

A job inserts a row when it starts (its key, enqueue time, start time, pid), sleeps
``work_ms`` and then sets the row's end time. Every execution is its own row, so a job
run twice shows as two finished rows (a duplicate) and a job whose worker was killed
leaves a row with no end time (the job that was in flight).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    pid INTEGER NOT NULL,
    t_enq REAL NOT NULL,
    t_start REAL NOT NULL,
    t_end REAL
)
"""

_connections: dict[tuple[int, Path], sqlite3.Connection] = {}


def ledger_path() -> Path:
    """The ledger of the run this process belongs to (``$BENCH_QUEUE_DIR/ledger.db``)."""
    return Path(os.environ["BENCH_QUEUE_DIR"]) / "ledger.db"


def connect() -> sqlite3.Connection:
    """This process's ledger connection (one per pid: RQ and Celery fork workers)."""
    key = (os.getpid(), ledger_path())
    conn = _connections.get(key)
    if conn is None:
        conn = sqlite3.connect(key[1], timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # The ledger is measuring, not data to keep: no fsync per job.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(_SCHEMA)
        _connections[key] = conn
    return conn


def record(key: str, t_enq: float, work_ms: float) -> None:
    """Run one job: note the start, work for ``work_ms``, note the end."""
    t_start = time.time()
    conn = connect()
    row = conn.execute(
        "INSERT INTO runs (key, pid, t_enq, t_start) VALUES (?, ?, ?, ?)",
        (key, os.getpid(), t_enq, t_start),
    ).lastrowid
    if work_ms:
        time.sleep(work_ms / 1000)
    conn.execute("UPDATE runs SET t_end = ? WHERE id = ?", (time.time(), row))
