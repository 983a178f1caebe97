"""``mina worker`` and ``mina jobs``: real subprocesses and the real queue file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from mina import audio, cli, db
from mina.jobs.chunks import Jobs
from mina.settings import Settings
from tests.support import make_user, make_wav, run_jobs

SQUARE = make_wav([16384, -16384] * 800)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The settings every process of the test reads from the environment (conftest's)."""
    settings = Settings.from_env()
    db.initialize(settings.database)
    return settings


def queue_chunk(jobs: Jobs) -> int:
    """Store a received chunk and send its job, as the upload does; return its id."""
    user_id, _ = make_user(jobs.database, "ada")
    with closing(db.connect(jobs.database)) as conn:
        meeting = db.create_meeting(conn, user_id, "Weekly sync")
        info = audio.read_wav(SQUARE)
        chunk = db.add_chunk(
            conn,
            meeting.id,
            duration_ms=info.duration_ms,
            sample_rate=info.sample_rate,
            channels=info.channels,
            size_bytes=len(SQUARE),
            wav=SQUARE,
        )
    jobs.process_chunk.send(chunk.id)
    return chunk.id


def status(jobs: Jobs, chunk_id: int) -> str:
    with closing(db.connect(jobs.database)) as conn:
        chunk = db.get_chunk(conn, chunk_id)
    assert chunk is not None
    return chunk.status


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Started ``mina worker`` processes, killed at teardown if still running."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_mina_worker_processes_a_queued_chunk_and_stops_on_a_signal(
    settings: Settings,
    tmp_path: Path,
    worker_process: list[subprocess.Popen[bytes]],
    stop: signal.Signals,
) -> None:
    jobs = Jobs(settings)
    chunk_id = queue_chunk(jobs)
    process = subprocess.Popen(
        [sys.executable, "-m", "mina", "worker", "--threads", "2"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    worker_process.append(process)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(process.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while status(jobs, chunk_id) == "received" and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(stop)
    assert 0 == process.wait(timeout=40), (process.stderr or b"").read()
    reader.join(timeout=5)

    assert "processed" == status(jobs, chunk_id)
    lines = [json.loads(line) for line in out]  # every line JSON
    events = [line["event"] for line in lines if line["logger"] == "mina.worker"]
    assert ["worker.started", "worker.stopping", "worker.stopped"] == events
    [started] = [line for line in lines if line["event"] == "worker.started"]
    assert ("embedded", ["chunks"], 2) == (started["broker"], started["queues"], started["threads"])
    [processed] = [line for line in lines if line["event"] == "chunk.processed"]
    assert chunk_id == processed["chunk_id"]


def test_mina_worker_processes_chunks_sent_through_redis(
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    worker_process: list[subprocess.Popen[bytes]],
) -> None:
    # Many hosts in one: the app's side sends through Redis, a `mina worker` takes the job.
    monkeypatch.setenv("MINA_BROKER_URL", redis_url)
    settings = Settings.from_env()
    db.initialize(settings.database)
    jobs = Jobs(settings)
    chunk_id = queue_chunk(jobs)
    process = subprocess.Popen(
        [sys.executable, "-m", "mina", "worker", "--processes", "2", "--threads", "1"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    worker_process.append(process)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(process.stdout or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        status(jobs, chunk_id) == "received" or sum(b"worker.started" in line for line in out) < 2
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert 0 == process.wait(timeout=60), (process.stderr or b"").read()
    reader.join(timeout=5)

    assert "processed" == status(jobs, chunk_id)
    lines = [json.loads(line) for line in out]
    started = [line for line in lines if line["event"] == "worker.started"]
    assert [redis_url] * 2 == [line["broker"] for line in started]  # no password to mask
    assert 2 == sum(line["event"] == "worker.stopped" for line in lines)
    assert not (tmp_path / "instance" / "jobs.sqlite3").exists()


def test_mina_worker_refuses_a_bad_broker_url_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mina", "worker"],
        env={**os.environ, "MINA_BROKER_URL": "redis://:hunter2@127.0.0.1:6379/x"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert 2 == result.returncode
    assert (
        "mina: configuration error: MINA_BROKER_URL='redis://***@127.0.0.1:6379/x' is invalid:"
        " the database (the path) is not a number\n"
    ) == result.stderr


def test_jobs_list_and_retry_a_dead_letter(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = Jobs(settings, min_backoff_ms=10)

    def broken(frames: bytes, sample_width: int) -> float:
        raise ValueError("analysis crashed")

    with monkeypatch.context() as patched:
        patched.setattr(audio, "rms_dbfs", broken)
        chunk_id = queue_chunk(jobs)
        run_jobs(jobs)
    runner = CliRunner()

    listed = runner.invoke(cli.main, ["jobs", "list"])
    assert 0 == listed.exit_code, listed.output
    table, letters = listed.output.split("\n\n")
    assert ["QUEUE QUEUED RUNNING DEAD", "chunks 0 0 1"] == [
        " ".join(line.split()) for line in table.splitlines()
    ]
    [header, letter] = letters.splitlines()
    fields = letter.split()
    assert ["ID", "QUEUE", "TASK", "ARGS", "AGE", "ERROR"] == header.split()
    assert (["chunks", "process_chunk", str(chunk_id)], "ValueError: analysis crashed") == (
        fields[1:4],
        letter.rpartition("  ")[2],
    )

    retried = runner.invoke(cli.main, ["jobs", "retry", "--all"])
    assert (0, "queued again: 1\n") == (retried.exit_code, retried.output)
    again = runner.invoke(cli.main, ["jobs", "retry", fields[0]])
    assert (
        1,
        "queued again: 0\nError: not dead letters (replayed already?): " + fields[0] + "\n",
    ) == (
        again.exit_code,
        again.output,
    )
    run_jobs(jobs)  # the replayed job, the analysis fixed
    assert "processed" == status(jobs, chunk_id)
    empty = runner.invoke(cli.main, ["jobs", "list"]).output
    assert ["QUEUE QUEUED RUNNING DEAD"] == [" ".join(line.split()) for line in empty.splitlines()]


def test_jobs_needs_ids_or_all_and_the_embedded_queue() -> None:
    runner = CliRunner()
    assert 2 == runner.invoke(cli.main, ["jobs", "retry"]).exit_code
    assert 2 == runner.invoke(cli.main, ["jobs", "retry", "1", "--all"]).exit_code
    result = runner.invoke(
        cli.main, ["jobs", "list"], env={"MINA_BROKER_URL": "redis://127.0.0.1:1/0"}
    )
    assert (
        1,
        "Error: MINA_BROKER_URL is set: the jobs are in Redis, not in the embedded queue\n",
    ) == (
        result.exit_code,
        result.output,
    )
