"""mina.jobs.chunks: the chunk job through real Dramatiq workers, the SQLite broker and gunicorn.

A chunk is processed once however often its job is delivered, fails for good as one
Sentry event and a dead letter, is sent again when its job was lost, and ``mina serve``
alone (the embedded mode) processes it.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from freezegun import freeze_time

from mina import audio, db
from mina.jobs.chunks import ACTOR, Jobs, Runner
from mina.jobs.sqlite_broker import SQLiteBroker
from mina.observability import context
from mina.settings import Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import Server, make_user, make_wav, run_jobs

SQUARE = make_wav([16384, -16384] * 800)  # 0.1 s at half scale: -6.02 dBFS


@pytest.fixture
def jobs(tmp_path: Path) -> Jobs:
    """The chunk jobs of a database in *tmp_path*, on the embedded broker, quick retries."""
    settings = Settings(instance_path=tmp_path / "instance", database=tmp_path / "mina.sqlite3")
    db.initialize(settings.database)
    return Jobs(settings, min_backoff_ms=10)


def add_chunk(jobs: Jobs, wav: bytes = SQUARE) -> int:
    """A meeting with one ``received`` chunk, stored as the upload stores it; its id."""
    user_id, _ = make_user(jobs.database, "ada")
    with closing(db.connect(jobs.database)) as conn:
        meeting = db.create_meeting(conn, user_id, "Weekly sync")
        info = audio.read_wav(wav)
        chunk = db.add_chunk(
            conn,
            meeting.id,
            duration_ms=info.duration_ms,
            sample_rate=info.sample_rate,
            channels=info.channels,
            size_bytes=len(wav),
            wav=wav,
        )
    return chunk.id


def chunk_row(jobs: Jobs, chunk_id: int) -> tuple[str, float | None]:
    """The chunk's status and level, rounded."""
    with closing(db.connect(jobs.database)) as conn:
        chunk = db.get_chunk(conn, chunk_id)
    assert chunk is not None
    return chunk.status, None if chunk.rms_dbfs is None else round(chunk.rms_dbfs, 2)


def test_a_chunk_delivered_twice_is_processed_once(
    jobs: Jobs, mina_logging: PipelineFactory
) -> None:
    lines = mina_logging()
    chunk_id = add_chunk(jobs)
    jobs.process_chunk.send(chunk_id)
    jobs.process_chunk.send(chunk_id)  # a redelivery, or a re-drive racing the first send

    run_jobs(jobs)

    assert ("processed", -6.02) == chunk_row(jobs, chunk_id)
    [processed] = lines.events("chunk.processed")
    [skipped] = lines.events("chunk.skipped")
    assert (chunk_id, -6.02) == (processed["chunk_id"], processed["rms_dbfs"])
    assert (chunk_id, "processed") == (skipped["chunk_id"], skipped["status"])
    assert 2 == len(lines.events("job.succeeded"))


def test_a_chunk_failing_past_its_retries_is_failed_a_dead_letter_and_one_event(
    jobs: Jobs,
    mina_sentry: PipelineFactory,
    sentry_ingest: SentryIngest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = mina_sentry(traces_sample_rate=0.0)

    def broken(frames: bytes, sample_width: int) -> float:
        raise RuntimeError("analysis crashed")

    monkeypatch.setattr(audio, "rms_dbfs", broken)  # a bug in the analysis, every attempt
    chunk_id = add_chunk(jobs)
    with sentry_sdk.isolation_scope():  # as the upload request sends it
        context.bind_request(request_id="req-9", method="POST", path="/api/meetings/m/chunks")
        context.bind_meeting("m-9")
        jobs.process_chunk.send(chunk_id)

    run_jobs(jobs)
    sentry_sdk.flush(timeout=5)

    assert ("failed", None) == chunk_row(jobs, chunk_id)
    assert [1, 2, 3] == [line["attempt"] for line in lines.events("job.retried")]
    [failed] = lines.events("job.failed")
    assert (4, "req-9") == (failed["attempt"], failed["request_id"])
    [event] = sentry_ingest.wait_for_events()
    assert ("job.failed", "req-9", "m-9") == (
        event["logentry"]["message"],
        event["tags"]["request_id"],
        event["tags"]["meeting_id"],
    )
    assert isinstance(jobs.broker, SQLiteBroker)
    [dead] = jobs.broker.dead_letters()
    assert (ACTOR, (chunk_id,)) == (dead.message.actor_name, dead.message.args)


def test_the_redrive_sends_chunks_left_received(jobs: Jobs, mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    with freeze_time("2026-12-07 10:00:00"):
        chunk_id = add_chunk(jobs)  # stored, but its job was never sent (a crash between)
    with freeze_time("2026-12-07 10:01:59"):
        assert 0 == jobs.redrive(timedelta(minutes=2))  # may still be in the queue
    with freeze_time("2026-12-07 10:02:01"):
        assert 1 == jobs.redrive(timedelta(minutes=2))

    run_jobs(jobs)

    assert ("processed", -6.02) == chunk_row(jobs, chunk_id)
    [redriven] = lines.events("chunk.redriven")
    assert ("warning", 1, chunk_id) == (
        redriven["level"],
        redriven["chunks"],
        redriven["first_chunk_id"],
    )
    assert 0 == jobs.redrive(timedelta(0))  # processed: nothing left to send


def test_a_runner_redrives_periodically_and_stops(jobs: Jobs) -> None:
    chunk_id = add_chunk(jobs)
    runner = Runner(jobs, threads=1, redrive_every_s=0.05, redrive_after=timedelta(0))
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while chunk_row(jobs, chunk_id)[0] == "received" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop(timeout_ms=10_000)

    assert ("processed", -6.02) == chunk_row(jobs, chunk_id)


def request_json(url: str, token: str, data: bytes | None = None) -> Any:
    """The JSON answer of a GET (or, with *data*, a WAV POST) with *token*."""
    headers = {"Authorization": f"Bearer {token}"}
    if data is not None:
        headers["Content-Type"] = "audio/wav"
    with urllib.request.urlopen(urllib.request.Request(url, data, headers)) as answer:
        return json.load(answer)


def test_mina_serve_alone_processes_an_uploaded_chunk(
    gunicorn: Callable[..., Server], tmp_path: Path
) -> None:
    # The embedded mode: no MINA_BROKER_URL, no `mina worker`; two gunicorn workers share
    # the SQLite queue in the instance folder.
    _, token = make_user(str(tmp_path / "mina.sqlite3"), "ada")
    server = gunicorn(workers=2)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    create = urllib.request.Request(
        server.url + "/api/meetings", json.dumps({"title": "Sync"}).encode(), headers
    )
    with urllib.request.urlopen(create) as answer:
        meeting = json.load(answer)
    chunks_url = f"{server.url}/api/meetings/{meeting['id']}/chunks"
    uploaded = request_json(chunks_url, token, SQUARE)

    deadline = time.monotonic() + 30
    listed = request_json(chunks_url, token)
    while listed["chunks"][0]["status"] == "received" and time.monotonic() < deadline:
        time.sleep(0.1)
        listed = request_json(chunks_url, token)
    lines, _ = server.stop()

    assert [(0, "processed", -6.02)] == [
        (c["seq"], c["status"], round(c["rms_dbfs"], 2)) for c in listed["chunks"]
    ]
    assert "received" == uploaded["status"]
    [processed] = [line for line in lines if line["event"] == "chunk.processed"]
    assert (uploaded["id"], meeting["id"]) == (processed["chunk_id"], processed["meeting_id"])
    assert (tmp_path / "instance" / "jobs.sqlite3").is_file()
