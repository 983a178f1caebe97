"""Concurrent writers on one SQLite file: real gunicorn, 2 workers x 4 threads.

The correctness half of ``bench/db_concurrency.py``: every write answers 201, every row is
there, and nothing reports a locked database. No timing is asserted.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

from mina import db

from .support import Server

CLIENTS = 8
PER_CLIENT = 25


def _create_meetings(server: Server, token: str, client: int) -> list[int]:
    statuses = []
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for n in range(PER_CLIENT):
            conn.request(
                "POST",
                "/api/meetings",
                body=json.dumps({"title": f"client {client} meeting {n}"}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()
    return statuses


def test_concurrent_writers_lose_nothing_and_never_see_a_locked_database(
    gunicorn: Callable[..., Server], tmp_path: Path
) -> None:
    database = tmp_path / "concurrent.sqlite3"
    db.initialize(database)
    with closing(db.connect(database)) as conn:
        tokens = [db.create_token(conn, db.create_user(conn, f"w{n}").id) for n in range(CLIENTS)]
    server = gunicorn({"MINA_DATABASE": str(database)}, workers=2, threads=4)

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(_create_meetings, [server] * CLIENTS, tokens, range(CLIENTS)))
    lines, stderr = server.stop()

    assert [[201] * PER_CLIENT] * CLIENTS == results
    with closing(db.connect(database)) as conn:
        titles = {row[0] for row in conn.execute("SELECT title FROM meetings")}
    assert {f"client {c} meeting {n}" for c in range(CLIENTS) for n in range(PER_CLIENT)} == titles
    assert CLIENTS * PER_CLIENT == len(lines_with(lines, "meeting.created"))
    assert "locked" not in stderr
    assert [] == [line for line in lines if "locked" in json.dumps(line)]


def lines_with(lines: list[dict[str, object]], event: str) -> list[dict[str, object]]:
    """The stdout lines whose event is *event*."""
    return [line for line in lines if line.get("event") == event]
