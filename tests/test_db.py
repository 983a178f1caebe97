"""mina.db: the SQLite store, on a real database file in tmp_path."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import flask
import pytest
import sentry_sdk
from freezegun import freeze_time

from mina import db
from mina.testing import SentryIngest


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A freshly initialised database file."""
    database = tmp_path / "nested" / "dir" / "mina.sqlite3"
    db.initialize(database)
    return database


@pytest.fixture
def conn(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the fresh database."""
    with closing(db.connect(path)) as connection:
        yield connection


def test_initialize_creates_parent_dirs_in_wal_mode(path: Path, conn: sqlite3.Connection) -> None:
    assert path.is_file()
    assert "wal" == conn.execute("PRAGMA journal_mode").fetchone()[0]
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "api_tokens", "user_activity", "meetings", "chunks", "chunk_audio"} == tables


def test_initialize_is_idempotent(path: Path) -> None:
    with closing(db.connect(path)) as conn:
        db.create_user(conn, "ada")
    db.initialize(path)
    with closing(db.connect(path)) as conn:
        assert 1 == conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]


def test_connections_enforce_foreign_keys(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.create_meeting(conn, owner_id=999, title="orphan")


def test_create_user(conn: sqlite3.Connection) -> None:
    user = db.create_user(conn, "ada", email="ada@example.org")
    assert ("ada", "ada@example.org") == (user.username, user.email)
    assert user.created_at.endswith("+00:00")


def test_duplicate_username_raises_user_exists(conn: sqlite3.Connection) -> None:
    db.create_user(conn, "ada")
    with pytest.raises(db.UserExists, match="a user named 'ada' already exists"):
        db.create_user(conn, "ada")


def test_token_round_trip_stores_only_the_hash(conn: sqlite3.Connection) -> None:
    user = db.create_user(conn, "ada")
    token = db.create_token(conn, user.id)
    assert token.startswith(db.TOKEN_PREFIX)
    stored = conn.execute("SELECT token_hash, last_used_at FROM api_tokens").fetchone()
    assert (hashlib.sha256(token.encode()).hexdigest(), None) == tuple(stored)
    assert user == db.user_for_token(conn, token)
    assert conn.execute("SELECT last_used_at FROM api_tokens").fetchone()[0] is not None


def test_last_used_at_is_kept_to_the_minute(conn: sqlite3.Connection) -> None:
    token = db.create_token(conn, db.create_user(conn, "ada").id)

    def use_at(moment: str) -> str:
        with freeze_time(moment):
            db.user_for_token(conn, token)
        return str(conn.execute("SELECT last_used_at FROM api_tokens").fetchone()[0])

    assert "2026-01-01T10:00:00.000+00:00" == use_at("2026-01-01 10:00:00")
    assert "2026-01-01T10:00:00.000+00:00" == use_at("2026-01-01 10:00:59")
    assert "2026-01-01T10:01:01.000+00:00" == use_at("2026-01-01 10:01:01")


def test_tokens_are_unique(conn: sqlite3.Connection) -> None:
    user = db.create_user(conn, "ada")
    assert db.create_token(conn, user.id) != db.create_token(conn, user.id)


@pytest.mark.parametrize("token", ["", "mina_unknown", "not-even-prefixed", "mina_"])
def test_unknown_tokens_find_no_user(conn: sqlite3.Connection, token: str) -> None:
    db.create_token(conn, db.create_user(conn, "ada").id)
    assert db.user_for_token(conn, token) is None


def test_meeting_round_trip(conn: sqlite3.Connection) -> None:
    owner = db.create_user(conn, "ada")
    meeting = db.create_meeting(conn, owner.id, "Weekly sync")
    assert 32 == len(meeting.id)
    assert meeting == db.get_meeting(conn, meeting.id)
    assert db.get_meeting(conn, "missing") is None


def test_chunks_are_numbered_and_totalled(conn: sqlite3.Connection) -> None:
    meeting = db.create_meeting(conn, db.create_user(conn, "ada").id, "Weekly sync")
    sizes = {"sample_rate": 16000, "channels": 1, "size_bytes": 44}
    first = db.add_chunk(conn, meeting.id, duration_ms=1000, **sizes)
    second = db.add_chunk(conn, meeting.id, duration_ms=250, **sizes)
    assert (0, 1) == (first.seq, second.seq)
    assert ("received", None) == (first.status, first.rms_dbfs)
    loaded = db.get_meeting(conn, meeting.id)
    assert loaded is not None
    assert (2, 1250) == (loaded.chunk_count, loaded.duration_ms)


def test_settle_chunk_makes_processed_final(conn: sqlite3.Connection) -> None:
    meeting = db.create_meeting(conn, db.create_user(conn, "ada").id, "Weekly sync")
    chunk = db.add_chunk(
        conn, meeting.id, duration_ms=10, sample_rate=8000, channels=2, size_bytes=3, wav=b"RIF"
    )
    assert (True, True, False, False) == (
        db.settle_chunk(conn, chunk.id, "failed"),
        db.settle_chunk(conn, chunk.id, "processed", rms_dbfs=-20.5),  # a replayed job
        db.settle_chunk(conn, chunk.id, "failed"),  # processed is final
        db.settle_chunk(conn, chunk.id, "processed", rms_dbfs=-1.0),  # a second delivery
    )
    settled = db.get_chunk(conn, chunk.id)
    assert settled is not None
    assert ("processed", -20.5, b"RIF") == (
        settled.status,
        settled.rms_dbfs,
        db.chunk_wav(conn, chunk.id),
    )
    assert False is db.settle_chunk(conn, 42, "failed")  # no such chunk


def test_a_chunk_and_its_audio_are_stored_together_or_not_at_all(
    conn: sqlite3.Connection,
) -> None:
    meeting = db.create_meeting(conn, db.create_user(conn, "ada").id, "Weekly sync")
    conn.execute("CREATE TRIGGER no_audio BEFORE INSERT ON chunk_audio BEGIN"
                 " SELECT RAISE(ABORT, 'disk full'); END")  # fmt: skip
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        db.add_chunk(
            conn, meeting.id, duration_ms=10, sample_rate=8000, channels=1, size_bytes=3, wav=b"x"
        )
    assert [] == db.list_chunks(conn, meeting.id, limit=10)
    assert False is conn.in_transaction


def test_get_db_keeps_one_connection_per_thread_across_app_contexts(tmp_path: Path) -> None:
    app = flask.Flask(__name__)
    app.config["MINA_DATABASE"] = str(tmp_path / "sub" / "app.sqlite3")
    db.init_app(app)
    assert (tmp_path / "sub" / "app.sqlite3").is_file()
    with app.app_context():
        conn = db.get_db()
        assert conn is db.get_db()
    with app.app_context():
        assert conn is db.get_db()  # kept: closing it would checkpoint and delete the WAL
        assert 1 == conn.execute("SELECT 1").fetchone()[0]
    others: list[sqlite3.Connection] = []

    def other_thread() -> None:
        with app.app_context():
            others.append(db.get_db())

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=10)
    assert [False] == [other is conn for other in others]


def test_thread_connection_reopens_for_another_database(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    db.initialize(first)
    db.initialize(second)
    conn = db.thread_connection(first)
    assert conn is db.thread_connection(first)
    other = db.thread_connection(second)
    assert other is not conn
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.execute("SELECT 1")
    assert [("main", str(second))] == [
        (row["name"], row["file"]) for row in other.execute("PRAGMA database_list")
    ]


def test_connections_commit_without_fsync_in_wal(conn: sqlite3.Connection) -> None:
    assert 1 == conn.execute("PRAGMA synchronous").fetchone()[0]  # 1 = NORMAL


def test_a_transaction_left_open_is_rolled_back_after_the_request(tmp_path: Path) -> None:
    app = flask.Flask(__name__)
    app.config["MINA_DATABASE"] = str(tmp_path / "app.sqlite3")
    db.init_app(app)
    with app.app_context():
        conn = db.get_db()
        conn.execute("BEGIN IMMEDIATE")
        db.create_user(conn, "ghost")
    assert not conn.in_transaction
    with closing(db.connect(app.config["MINA_DATABASE"])) as other:
        assert 0 == other.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        db.create_user(other, "ada")  # the write lock was released


def test_every_statement_is_a_db_span_without_values(path: Path) -> None:
    with SentryIngest() as ingest:
        sentry_sdk.init(
            dsn=ingest.dsn,
            traces_sample_rate=1.0,
            default_integrations=False,
            auto_enabling_integrations=False,
            http_proxy="",
        )
        try:
            with sentry_sdk.start_transaction(name="test"), closing(db.connect(path)) as conn:
                user = db.create_user(conn, "secret-name", email="secret@example.org")
                db.user_for_token(conn, db.create_token(conn, user.id))
                db.get_meeting(conn, db.create_meeting(conn, user.id, "secret title").id)
            sentry_sdk.flush()
            (transaction,) = ingest.wait_for_transactions()
        finally:
            sentry_sdk.get_client().close(timeout=2)
            sentry_sdk.get_global_scope().set_client(None)
    spans = [(s["op"], s["description"]) for s in transaction["spans"]]
    assert [
        ("db", "CONNECT"),
        ("db", "INSERT users"),
        ("db", "INSERT api_tokens"),
        ("db", "SELECT api_tokens"),
        ("db", "UPDATE api_tokens"),
        ("db", "UPSERT user_activity"),
        ("db", "INSERT meetings"),
        ("db", "SELECT meetings"),
    ] == spans
    assert "secret" not in repr(transaction["spans"])
