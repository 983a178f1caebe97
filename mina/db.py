"""The embedded SQLite store: users, API tokens, meetings and audio chunks.

Requests use their thread's connection (`get_db`, `thread_connection`), opened once and
kept for the thread's life; the command line and tests open their own with `connect`.
Every statement runs inside a ``db`` performance span whose description is the SQL verb
and table, never the parameters.

Why connections are kept: the file is in WAL mode, and when the last connection to a WAL
database closes, SQLite checkpoints the log into the file and deletes it, and the next
connection recreates it. With a connection per request that happened on most requests
(about 9 ms per close, measured, plus a schema read on every open). Commits use
``synchronous = NORMAL``, WAL's recommended setting: no fsync per commit (the log is
synced at checkpoints), so the write lock is held for microseconds instead of an fsync,
and a power loss can lose the last commits but never corrupts the file.

The repository functions take the connection as their first argument, so the same code
serves requests, background jobs and the command line.

Over 400 lines: the schema, the connection policy and every query of the meetings
app are its one data layer; each part is short and they change together.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal

from flask import Flask, current_app

from mina.observability.tracing import span
from mina.settings import ConfigError, Settings

__all__ = [
    "TOKEN_PREFIX",
    "ChunkRow",
    "ChunkStatus",
    "MeetingRow",
    "TokenRow",
    "UserExists",
    "UserRow",
    "UserSummary",
    "add_chunk",
    "chunk_wav",
    "connect",
    "create_meeting",
    "create_token",
    "create_user",
    "find_user",
    "get_chunk",
    "get_db",
    "get_meeting",
    "init_app",
    "initialize",
    "list_chunks",
    "list_meetings",
    "list_tokens",
    "list_users",
    "received_chunks",
    "revoke_tokens",
    "settle_chunk",
    "thread_connection",
    "user_for_token",
]

#: Every API token starts with this, so a leaked one is recognisable (secret scanners).
TOKEN_PREFIX: Final = "mina_"

#: The states of an uploaded chunk.
ChunkStatus = Literal["received", "processed", "failed"]

# Concurrent gunicorn workers write to the same file: wait for the lock, do not fail.
_BUSY_TIMEOUT_S: Final = 5.0
_SPAN_DATA: Final = {"db.system": "sqlite"}
# How stale api_tokens.last_used_at may get: a busy client must not make every request
# a write, which the workers would serialise on.
_LAST_USED_RESOLUTION: Final = timedelta(minutes=1)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
-- When a user's token last authenticated a request: the user's, so it outlives revoked tokens.
CREATE TABLE IF NOT EXISTS user_activity (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_used_at TEXT NOT NULL
);
-- A database from before user_activity: its tokens' last use, once (later runs add nothing).
INSERT OR IGNORE INTO user_activity (user_id, last_used_at)
    SELECT user_id, MAX(last_used_at) FROM api_tokens
    WHERE last_used_at IS NOT NULL GROUP BY user_id;
CREATE TABLE IF NOT EXISTS meetings (
    id TEXT PRIMARY KEY,
    owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS meetings_owner ON meetings (owner_id);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    meeting_id TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    rms_dbfs REAL,
    sample_rate INTEGER NOT NULL,
    channels INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('received', 'processed', 'failed')),
    created_at TEXT NOT NULL,
    UNIQUE (meeting_id, seq)
);
-- A chunk's WAV as uploaded: what its job reads, on whichever host the job runs.
CREATE TABLE IF NOT EXISTS chunk_audio (
    chunk_id INTEGER PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    wav BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_received ON chunks (created_at) WHERE status = 'received';
"""


class UserExists(ValueError):
    """A user with this username already exists."""

    def __init__(self, username: str) -> None:
        self.username = username
        super().__init__(f"a user named {username!r} already exists")


@dataclass(frozen=True, slots=True)
class UserRow:
    """A row of ``users``."""

    id: int
    username: str
    email: str | None
    created_at: str


@dataclass(frozen=True, slots=True)
class MeetingRow:
    """A row of ``meetings`` with totals over its chunks."""

    id: str
    owner_id: int
    title: str
    created_at: str
    chunk_count: int
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        """The meeting as the API shows it."""
        return {
            "id": self.id,
            "title": self.title,
            "owner_id": self.owner_id,
            "created_at": self.created_at,
            "chunk_count": self.chunk_count,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A row of ``chunks``: one uploaded piece of a meeting's audio."""

    id: int
    meeting_id: str
    seq: int
    duration_ms: int
    rms_dbfs: float | None
    sample_rate: int
    channels: int
    size_bytes: int
    status: ChunkStatus
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """The chunk as the API shows it."""
        return {
            "id": self.id,
            "meeting_id": self.meeting_id,
            "seq": self.seq,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "rms_dbfs": self.rms_dbfs,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "size_bytes": self.size_bytes,
            "created_at": self.created_at,
        }


def _now(delta: timedelta = timedelta(0)) -> str:
    # Fixed-width UTC ISO 8601: these strings sort (and compare) like the times they name.
    return (datetime.now(UTC) + delta).isoformat(timespec="milliseconds")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _execute(
    conn: sqlite3.Connection, description: str, sql: str, params: Sequence[Any] = ()
) -> sqlite3.Cursor:
    with span("db", description, **_SPAN_DATA):
        return conn.execute(sql, params)


def _fields(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}  # noqa: SIM118 -- Row has no __iter__ of keys


def _fetchone(
    conn: sqlite3.Connection, description: str, sql: str, params: Sequence[Any] = ()
) -> sqlite3.Row | None:
    with span("db", description, **_SPAN_DATA):
        row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
        return row


def connect(path: str | PathLike[str]) -> sqlite3.Connection:
    """Open a connection to the database at *path*, for use outside a request.

    The connection is in autocommit mode (every statement is its own transaction), returns
    `sqlite3.Row` rows and enforces foreign keys. Close it when done
    (``with contextlib.closing(connect(path)) as conn``). The schema must exist: see
    `initialize`.
    """
    with span("db", "CONNECT", **_SPAN_DATA):
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")  # per connection; see the module doc
    return conn


class _ThreadConnection(threading.local):
    """The calling thread's kept connection, with the database and process it is for."""

    key: tuple[int, str] | None = None
    conn: sqlite3.Connection | None = None


_thread = _ThreadConnection()


def thread_connection(path: str | PathLike[str]) -> sqlite3.Connection:
    """The calling thread's connection to *path*, opened on first use (see `connect`).

    It stays open for the thread's life (SQLite closes it when the thread ends), so the
    WAL log is not checkpointed and deleted after every request. A thread keeps one: asked
    for another database, it closes the old connection. A process forked from one that
    holds a connection opens its own (SQLite connections must not cross a fork).
    """
    key = (os.getpid(), os.fspath(path))
    conn = _thread.conn
    if conn is None or _thread.key != key:
        if conn is not None and _thread.key is not None and _thread.key[0] == key[0]:
            conn.close()
        _thread.conn = None  # a failed connect leaves no stale connection behind
        _thread.conn = conn = connect(path)
        _thread.key = key
    return conn


def initialize(path: str | PathLike[str]) -> None:
    """Create the database at *path* (and its parent directories) if needed; idempotent.

    `Settings.from_env` has already refused a ``MINA_DATABASE`` whose directory is missing:
    directories are created here only for the default, inside the instance folder.

    Switches the file to WAL journaling, which lets readers proceed while one process
    writes: several gunicorn workers share the file. Then takes the write lock once and
    releases it, so a file Mina could read but not write fails here, at start-up, rather
    than on the first request that writes.

    :raises mina.settings.ConfigError: naming ``MINA_DATABASE``, when the directory cannot
        be created, or the file cannot be opened, written or read as a SQLite database.
    """
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise _unusable(path, f"{parent} is not a directory") from None
    except OSError as exc:
        raise _unusable(path, f"cannot create the directory {parent}: {exc.strerror}") from None
    try:
        conn = connect(path)
        try:
            _execute(conn, "PRAGMA journal_mode", "PRAGMA journal_mode = WAL")
            with span("db", "CREATE schema", **_SPAN_DATA):
                conn.executescript(_SCHEMA)
            _execute(conn, "BEGIN IMMEDIATE", "BEGIN IMMEDIATE")
            conn.rollback()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _unusable(path, f"not a usable SQLite database: {exc}") from None


def _unusable(path: str | PathLike[str], reason: str) -> ConfigError:
    return ConfigError("MINA_DATABASE", os.fspath(path), reason)


def init_app(app: Flask) -> None:
    """Create the database named by ``MINA_DATABASE``; end open transactions after requests.

    Without the setting, the documented default (`Settings.database`) is used.
    """
    path = app.config.setdefault("MINA_DATABASE", str(Settings().database))
    initialize(path)
    app.teardown_appcontext(_end_transaction)


def get_db() -> sqlite3.Connection:
    """The connection for the current app: this thread's kept one (`thread_connection`)."""
    return thread_connection(current_app.config["MINA_DATABASE"])


def _end_transaction(_exc: BaseException | None) -> None:
    # The connection outlives the request: a transaction a failing view left open must not
    # hold the write lock, or leak its writes, into the next request on this thread.
    conn = _thread.conn
    if conn is not None and conn.in_transaction:
        conn.rollback()


def create_user(conn: sqlite3.Connection, username: str, email: str | None = None) -> UserRow:
    """Insert a user and return it.

    :raises UserExists: when *username* is taken.
    """
    try:
        row = _fetchone(
            conn,
            "INSERT users",
            "INSERT INTO users (username, email, created_at) VALUES (?, ?, ?) RETURNING *",
            (username, email, _now()),
        )
    except sqlite3.IntegrityError:
        raise UserExists(username) from None
    assert row is not None  # RETURNING always yields the inserted row
    return UserRow(**_fields(row))


def create_token(conn: sqlite3.Connection, user_id: int) -> str:
    """Issue a new API token for *user_id* and return it.

    Only its SHA-256 is stored: the plaintext exists once, in the return value.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    _execute(
        conn,
        "INSERT api_tokens",
        "INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
        (user_id, _hash_token(token), _now()),
    )
    return token


def user_for_token(conn: sqlite3.Connection, token: str) -> UserRow | None:
    """The user *token* belongs to, or None; records when the token was last used.

    ``last_used_at`` is kept to the minute, which spares most requests a write.

    The lookup is by the token's hash, so no secret is ever compared byte by byte (no
    timing leak) and the database never sees the plaintext.
    """
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = _fetchone(
        conn,
        "SELECT api_tokens",
        "SELECT api_tokens.id AS token_id, api_tokens.last_used_at, users.* FROM api_tokens"
        " JOIN users ON users.id = api_tokens.user_id WHERE api_tokens.token_hash = ?",
        (_hash_token(token),),
    )
    if row is None:
        return None
    if row["last_used_at"] is None or row["last_used_at"] < _now(-_LAST_USED_RESOLUTION):
        now = _now()
        _execute(
            conn,
            "UPDATE api_tokens",
            "UPDATE api_tokens SET last_used_at = ? WHERE id = ?",
            (now, row["token_id"]),
        )
        _execute(
            conn,
            "UPSERT user_activity",
            "INSERT INTO user_activity (user_id, last_used_at) VALUES (?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET last_used_at = excluded.last_used_at",
            (row["id"], now),
        )
    user = _fields(row)
    del user["token_id"], user["last_used_at"]
    return UserRow(**user)


def create_meeting(conn: sqlite3.Connection, owner_id: int, title: str) -> MeetingRow:
    """Insert a meeting owned by *owner_id* and return it; its id is a random uuid4 hex."""
    meeting = MeetingRow(uuid.uuid4().hex, owner_id, title, _now(), 0, 0)
    _execute(
        conn,
        "INSERT meetings",
        "INSERT INTO meetings (id, owner_id, title, created_at) VALUES (?, ?, ?, ?)",
        (meeting.id, owner_id, title, meeting.created_at),
    )
    return meeting


_MEETINGS_WITH_TOTALS: Final = (
    "SELECT meetings.id, owner_id, title, meetings.created_at,"
    " COUNT(chunks.id) AS chunk_count,"
    " COALESCE(SUM(chunks.duration_ms), 0) AS duration_ms"
    " FROM meetings LEFT JOIN chunks ON chunks.meeting_id = meetings.id"
)


def get_meeting(conn: sqlite3.Connection, meeting_id: str) -> MeetingRow | None:
    """The meeting *meeting_id* with its chunk count and total duration, or None."""
    row = _fetchone(
        conn,
        "SELECT meetings",
        _MEETINGS_WITH_TOTALS + " WHERE meetings.id = ? GROUP BY meetings.id",
        (meeting_id,),
    )
    return None if row is None else MeetingRow(**_fields(row))


def list_meetings(
    conn: sqlite3.Connection, owner_id: int, *, limit: int, before: str | None = None
) -> list[MeetingRow]:
    """At most *limit* meetings of *owner_id*, newest first, with their totals.

    *before* is the id of the last meeting of the previous page: the page starts after it
    (a keyset, so a meeting created meanwhile neither shifts nor repeats a page). An id
    that is not one of the owner's meetings gives an empty page.
    """
    sql = _MEETINGS_WITH_TOTALS + " WHERE owner_id = ?"
    params: list[Any] = [owner_id]
    if before is not None:
        sql += (
            " AND (meetings.created_at, meetings.id) <"
            " (SELECT created_at, id FROM meetings WHERE id = ? AND owner_id = ?)"
        )
        params += [before, owner_id]
    sql += " GROUP BY meetings.id ORDER BY meetings.created_at DESC, meetings.id DESC LIMIT ?"
    params.append(limit)
    with span("db", "SELECT meetings", **_SPAN_DATA):
        rows = conn.execute(sql, params).fetchall()
    return [MeetingRow(**_fields(row)) for row in rows]


def list_chunks(
    conn: sqlite3.Connection, meeting_id: str, *, limit: int, after_seq: int = -1
) -> list[ChunkRow]:
    """At most *limit* chunks of *meeting_id* in upload order, from sequence *after_seq* + 1."""
    with span("db", "SELECT chunks", **_SPAN_DATA):
        rows = conn.execute(
            "SELECT * FROM chunks WHERE meeting_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (meeting_id, after_seq, limit),
        ).fetchall()
    return [ChunkRow(**_fields(row)) for row in rows]


def add_chunk(
    conn: sqlite3.Connection,
    meeting_id: str,
    *,
    duration_ms: int,
    sample_rate: int,
    channels: int,
    size_bytes: int,
    rms_dbfs: float | None = None,
    wav: bytes | None = None,
) -> ChunkRow:
    """Append a chunk to *meeting_id* with status ``received`` and return it, committed.

    Its ``seq`` is the next number in the meeting (0 for the first), assigned inside the
    INSERT itself so concurrent uploads cannot pick the same one. *wav*, when given, is
    stored with it in the same transaction (`chunk_wav`): a job never finds a chunk
    without its audio.
    """
    with _transaction(conn):
        row = _fetchone(
            conn,
            "INSERT chunks",
            "INSERT INTO chunks (meeting_id, seq, duration_ms, rms_dbfs, sample_rate, channels,"
            " size_bytes, status, created_at)"
            " VALUES (?, (SELECT COALESCE(MAX(seq) + 1, 0) FROM chunks WHERE meeting_id = ?),"
            " ?, ?, ?, ?, ?, 'received', ?) RETURNING *",
            (
                meeting_id,
                meeting_id,
                duration_ms,
                rms_dbfs,
                sample_rate,
                channels,
                size_bytes,
                _now(),
            ),
        )
        assert row is not None  # RETURNING always yields the inserted row
        chunk = ChunkRow(**_fields(row))
        if wav is not None:
            _execute(
                conn,
                "INSERT chunk_audio",
                "INSERT INTO chunk_audio (chunk_id, wav) VALUES (?, ?)",
                (chunk.id, wav),
            )
    return chunk


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # The connections are in autocommit mode; this groups statements, committed on exit.
    _execute(conn, "BEGIN IMMEDIATE", "BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def chunk_wav(conn: sqlite3.Connection, chunk_id: int) -> bytes | None:
    """The WAV stored with chunk *chunk_id* (`add_chunk`), or None."""
    row = _fetchone(
        conn, "SELECT chunk_audio", "SELECT wav FROM chunk_audio WHERE chunk_id = ?", (chunk_id,)
    )
    return None if row is None else bytes(row[0])


def settle_chunk(
    conn: sqlite3.Connection,
    chunk_id: int,
    status: Literal["processed", "failed"],
    *,
    rms_dbfs: float | None = None,
) -> bool:
    """Settle chunk *chunk_id*: ``processed`` is final, ``failed`` only replaces ``received``.

    A job delivered twice changes nothing the second time; a failed chunk's job replayed
    from the dead letters (``mina jobs retry``) may still process it.

    :returns: False when nothing changed (already processed, or no such chunk).
    """
    allowed = "('received', 'failed')" if status == "processed" else "('received')"
    cursor = _execute(
        conn,
        "UPDATE chunks",
        f"UPDATE chunks SET status = ?, rms_dbfs = ? WHERE id = ? AND status IN {allowed}",
        (status, rms_dbfs, chunk_id),
    )
    return cursor.rowcount == 1


def received_chunks(conn: sqlite3.Connection, older_than: timedelta, limit: int) -> list[int]:
    """Ids of at most *limit* chunks still ``received`` *older_than* after upload, oldest first."""
    with span("db", "SELECT chunks", **_SPAN_DATA):
        rows = conn.execute(
            "SELECT id FROM chunks WHERE status = 'received' AND created_at < ?"
            " ORDER BY created_at LIMIT ?",
            (_now(-older_than), limit),
        ).fetchall()
    return [row[0] for row in rows]


def get_chunk(conn: sqlite3.Connection, chunk_id: int) -> ChunkRow | None:
    """The chunk *chunk_id*, or None."""
    row = _fetchone(conn, "SELECT chunks", "SELECT * FROM chunks WHERE id = ?", (chunk_id,))
    return None if row is None else ChunkRow(**_fields(row))


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A user with the number of its API tokens and when one of its tokens, revoked ones
    included, last authenticated a request (to the minute)."""

    id: int
    username: str
    email: str | None
    created_at: str
    tokens: int
    last_used_at: str | None


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A row of ``api_tokens`` without its hash."""

    id: int
    user_id: int
    created_at: str
    last_used_at: str | None


def find_user(conn: sqlite3.Connection, username: str) -> UserRow | None:
    """The user named *username*, or None."""
    row = _fetchone(conn, "SELECT users", "SELECT * FROM users WHERE username = ?", (username,))
    return None if row is None else UserRow(**_fields(row))


def list_users(conn: sqlite3.Connection) -> list[UserSummary]:
    """Every user, by id, with its token count and the last time one of its tokens was
    used (kept when that token is revoked: the user was active, whatever became of it)."""
    with span("db", "SELECT users", **_SPAN_DATA):
        rows = conn.execute(
            "SELECT users.*, COUNT(api_tokens.id) AS tokens,"
            " user_activity.last_used_at AS last_used_at"
            " FROM users LEFT JOIN api_tokens ON api_tokens.user_id = users.id"
            " LEFT JOIN user_activity ON user_activity.user_id = users.id"
            " GROUP BY users.id ORDER BY users.id"
        ).fetchall()
    return [UserSummary(**_fields(row)) for row in rows]


def list_tokens(conn: sqlite3.Connection, user_id: int) -> list[TokenRow]:
    """The API tokens of *user_id*, oldest first (their ids, never the tokens)."""
    with span("db", "SELECT api_tokens", **_SPAN_DATA):
        rows = conn.execute(
            "SELECT id, user_id, created_at, last_used_at FROM api_tokens"
            " WHERE user_id = ? ORDER BY id",
            (user_id,),
        ).fetchall()
    return [TokenRow(**_fields(row)) for row in rows]


def revoke_tokens(
    conn: sqlite3.Connection,
    user_id: int,
    *,
    token_id: int | None = None,
    keep: str | None = None,
) -> int:
    """Delete API tokens of *user_id* and return how many: all of them, only *token_id*,
    or all but the token *keep* (a plaintext token, matched by its hash)."""
    sql = "DELETE FROM api_tokens WHERE user_id = ?"
    params: list[Any] = [user_id]
    if token_id is not None:
        sql += " AND id = ?"
        params.append(token_id)
    if keep is not None:
        sql += " AND token_hash != ?"
        params.append(_hash_token(keep))
    return _execute(conn, "DELETE api_tokens", sql, params).rowcount
