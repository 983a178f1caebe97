"""stdout that nobody reads, that is closed or full: the service answers, drops are counted.

Real pipes, real subprocesses and real gunicorn; the test reads a pipe only when it
means to, so "nobody reads" is what the process really sees.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import os
import queue
import random
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from mina.observability.stream import LineHandler, begin_batch, end_batch
from mina.observability.stream_thread import _never_blocks
from mina.observability.stream_writer import LineWriter
from tests.support import ROOT, free_port

BOUND = 60  # seconds any subprocess or server may take before the test gives up


def parse(out: bytes) -> list[dict[str, Any]]:
    """Every line of *out* as JSON (fails the test on a line that is not)."""
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]


def without_timestamp(line: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in line.items() if key != "timestamp"}


def dropped_reports(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == "log.dropped"]


class Reader:
    """Reads a pipe on a thread once started, so the test decides when the pipe drains."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while chunk := self.stream.read1(65536):  # type: ignore[attr-defined]
            self.data += chunk

    def start(self) -> Reader:
        self.thread.start()
        return self

    def join(self) -> bytes:
        self.thread.join(timeout=BOUND)
        assert not self.thread.is_alive(), "the pipe was never closed"
        return bytes(self.data)


def read_line(stream: IO[bytes]) -> str:
    """One line of *stream*, waiting at most BOUND seconds for it."""
    box: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    return box.get(timeout=BOUND).decode()


# --- the writer on its own ----------------------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """A real pipe: (read end, write end), both closed afterwards."""
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb", buffering=0) as writer:
        yield reader, writer


def test_lines_from_many_threads_are_never_split_or_interleaved(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    reader = Reader(reader_end).start()
    writer = LineWriter(writer_end, buffer_bytes=64 * 1024 * 1024)
    rng = random.Random(7)
    # Sizes around PIPE_BUF and well past it: lines bigger than one atomic pipe write.
    sizes = [rng.choice([1, 100, 4000, 4096, 4097, 9000, 20000]) for _ in range(400)]

    def produce(thread: int) -> None:
        for n, size in enumerate(sizes):
            line = {"thread": thread, "n": n, "pad": chr(ord("a") + thread) * size}
            assert writer.submit(json.dumps(line).encode() + b"\n")

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BOUND)
    assert writer.flush(timeout=BOUND)
    writer_end.close()
    lines = parse(reader.join())

    for t in range(8):
        mine = [line for line in lines if line["thread"] == t]
        assert list(range(len(sizes))) == [line["n"] for line in mine]  # in order, none lost
        assert [chr(ord("a") + t) * size for size in sizes] == [line["pad"] for line in mine]
    assert 8 * len(sizes) == len(lines)
    assert ("ok", 0, None) == writer.health()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the inline write is Linux's")
def test_a_pipe_with_room_takes_the_line_from_the_caller_and_a_full_one_from_the_writer(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end)
    writer.submit(b'{"n":0}\n')
    assert None is writer._thread  # written by the caller: no thread woken, none started
    assert '{"n":0}\n' == read_line(reader_end)

    os.set_blocking(writer_end.fileno(), False)  # to fill the pipe without blocking
    try:
        while True:
            os.write(writer_end.fileno(), b"#" * 4096)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(writer_end.fileno(), True)
    writer.submit(b'{"n":1}\n')  # no room: queued, the writer thread waits for the reader
    writer.submit(b'{"n":2}\n')  # behind it, in order, though the pipe may have room again
    assert writer._thread is not None
    reader = Reader(reader_end).start()
    assert writer.flush(timeout=BOUND)
    writer_end.close()
    assert [b'{"n":1}', b'{"n":2}'] == reader.join().replace(b"#", b"").split(b"\n")[:2]


def test_only_a_file_or_dev_null_is_written_without_asking_the_descriptor(
    tmp_path: Path, pipe: tuple[IO[bytes], IO[bytes]]
) -> None:
    # Those never wait for a reader; a pipe, a socket or a terminal is polled per line.
    _, writer_end = pipe
    left, right = socket.socketpair()
    with open(tmp_path / "out.log", "wb") as file, open(os.devnull, "wb") as null:
        with left, right:
            decided = [_never_blocks(f.fileno()) for f in (file, null, writer_end, left)]
        writer = LineWriter(file)
        writer.submit(b'{"n":0}\n')
        assert None is writer._thread
    assert [True, True, False, False] == decided
    assert b'{"n":0}\n' == (tmp_path / "out.log").read_bytes()


def test_block_waits_for_a_slow_reader_and_drops_nothing(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end, buffer_bytes=1024, when_full="block", block_timeout=BOUND)
    lines = [json.dumps({"n": n, "pad": "x" * 200}).encode() + b"\n" for n in range(3000)]
    received = bytearray()

    def slow_reader() -> None:  # far slower than the producer: the buffer is full often
        pause = threading.Event()
        while chunk := reader_end.read1(512):  # type: ignore[attr-defined]
            received.extend(chunk)
            pause.wait(0.0005)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    accepted = [writer.submit(line) for line in lines]
    assert writer.flush(timeout=BOUND)
    writer_end.close()
    reader.join(timeout=BOUND)

    assert all(accepted)
    assert b"".join(lines) == received
    assert ("ok", 0, None) == writer.health()


# --- processes with a stdout nobody reads, closed, or full ------------------------------------

LOGGER = """
import os, sys
import mina
from mina.logging_config import configure_logging

configure_logging()
log = mina.get_logger("mina.test")
"""


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(LOGGER + textwrap.dedent(body))
    return path


def env(**variables: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **variables}


@pytest.mark.parametrize("when_full", ["drop_newest", "block"])
def test_a_pipe_nobody_reads_drops_lines_counts_them_and_reports_once_it_drains(
    tmp_path: Path, when_full: str
) -> None:
    path = script(
        tmp_path,
        """
        for n in range(3000):
            log.info("tick", n=n, pad="x" * 200)
        sys.stderr.write("logged\\n")
        sys.stderr.flush()
        sys.stdin.read()  # until the test has started reading
        """,
    )
    process = subprocess.Popen(
        [sys.executable, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(
            MINA_LOG_BUFFER_BYTES="16384",
            MINA_LOG_WHEN_FULL=when_full,
            MINA_LOG_BLOCK_TIMEOUT_MS="50",
        ),
    )
    try:
        assert process.stdin is not None and process.stderr is not None
        notice = read_line(process.stderr)
        # Every tick was logged while nobody read: the process did not hang on stdout.
        assert "logged\n" == read_line(process.stderr)
        out, err = process.communicate(input=b"", timeout=BOUND)
    finally:
        process.kill()
        process.wait(timeout=BOUND)

    lines = parse(out)
    ticks = [line["n"] for line in lines if line["event"] == "tick"]
    reports = dropped_reports(lines)
    assert 0 == process.returncode
    assert (
        "mina: stdout is not keeping up; log lines are dropped and counted until it "
        "drains (MINA_LOG_WHEN_FULL, MINA_LOG_BUFFER_BYTES)\n"
    ) == notice
    assert b"" == err
    assert sorted(ticks) == ticks  # the newest are dropped, the oldest kept in order
    assert 3000 == len(ticks) + sum(report["dropped"] for report in reports)
    assert [
        {
            "level": "warning",
            "logger": "mina.observability.stream",
            "event": "log.dropped",
            "dropped": report["dropped"],
            "reason": "buffer_full",
        }
        for report in reports
    ] == [without_timestamp(report) for report in reports]
    assert all(report["dropped"] > 0 for report in reports)


def test_lines_accepted_before_exit_are_written(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        for n in range(2000):
            log.info("tick", n=n)
        sys.exit(3)
        """,
    )
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, env=env(), timeout=BOUND
    )

    assert 3 == result.returncode
    assert list(range(2000)) == [line["n"] for line in parse(result.stdout)]
    assert b"" == result.stderr


def test_exit_waits_a_bounded_time_for_a_stalled_stdout_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    path = script(
        tmp_path,
        """
        for n in range(3000):
            log.info("tick", n=n, pad="x" * 100)
        """,
    )
    with subprocess.Popen(
        [sys.executable, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(MINA_LOG_BUFFER_BYTES=str(64 * 1024 * 1024)),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.wait(timeout=BOUND)  # nobody reads stdout, and still it exits
        err = process.stderr.read().decode()
        out = process.stdout.read()

    ticks = [line["n"] for line in parse(out)]
    match = re.fullmatch(
        r"mina: stdout did not take the last (\d+) log lines within 2 s of exit; "
        r"they are lost\n",
        err,
    )
    assert match is not None, err
    assert 0 == process.returncode
    assert list(range(len(ticks))) == ticks
    assert 3000 == len(ticks) + int(match[1])


def run_with_stdout(tmp_path: Path, redirect: str, body: str) -> subprocess.CompletedProcess[str]:
    """Run a script through ``sh`` with stdout redirected as a shell user would."""
    path = script(tmp_path, body)
    return subprocess.run(
        ["sh", "-c", f'exec "$0" "$1" {redirect}', sys.executable, str(path)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL if not redirect else None,
        text=True,
        env=env(),
        timeout=BOUND,
    )


APP_REQUESTS = """
import json
app = mina.create_app()
client = app.test_client()
for n in range(50):
    client.get("/meetings-nowhere")
print(json.dumps(client.get("/healthz").json), file=sys.stderr)
"""


def test_closed_stdout_is_said_once_and_the_app_goes_on(tmp_path: Path) -> None:
    result = run_with_stdout(tmp_path, ">&-", APP_REQUESTS)

    [notice, health, summary] = result.stderr.splitlines()
    assert 0 == result.returncode
    assert "mina: stdout is closed; log lines are dropped and counted" == notice
    body = json.loads(health)
    assert {"status": "ok", "logging": "degraded", "reason": "stdout_closed"} == {
        key: value for key, value in body.items() if key not in ("dropped", "outbox", "sentry")
    }
    assert body["dropped"] >= 51  # a request.finished line per request, at least
    assert re.fullmatch(r"mina: \d+ log lines not written to stdout \(closed\)", summary)


def test_dev_full_is_said_once_not_once_per_line(tmp_path: Path) -> None:
    result = run_with_stdout(tmp_path, ">/dev/full", APP_REQUESTS)

    [notice, health, summary] = result.stderr.splitlines()
    enospc = "ENOSPC (No space left on device)"
    assert 0 == result.returncode
    assert f"mina: cannot write to stdout: {enospc}; log lines are dropped and counted" == notice
    body = json.loads(health)
    assert {
        "status": "ok",
        "logging": "degraded",
        "reason": f"stdout_write_failed: {enospc}",
    } == {key: value for key, value in body.items() if key not in ("dropped", "outbox", "sentry")}
    # The writer meets the full device line by line, behind the requests: /healthz has
    # counted some drops by the time it answers, the exit's summary counts every line.
    assert body["dropped"] >= 1
    written = re.fullmatch(
        rf"mina: (\d+) log lines not written to stdout \({re.escape(enospc)}\)", summary
    )
    assert written is not None
    assert int(written.group(1)) >= 51  # a request.finished line per request, at least


# --- real gunicorn ------------------------------------------------------------------------


class Gunicorn:
    """Mina under real gunicorn with its stdout as the test sets it up (a shell redirect,
    or a pipe that the test reads only when it says so); stderr collected."""

    def __init__(self, redirect: str = "", **variables: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = 'exec "$0" -m gunicorn --config python:mina.gunicorn_conf "mina:create_app()"'
        self.process = subprocess.Popen(
            ["sh", "-c", f"{command} {redirect}", sys.executable],
            stdout=subprocess.PIPE if not redirect else None,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env(
                MINA_BIND=f"127.0.0.1:{self.port}",
                MINA_WORKERS="1",
                MINA_THREADS="4",
                **variables,
            ),
        )
        assert self.process.stderr is not None
        self.stderr = Reader(self.process.stderr).start()
        self.stdout = Reader(self.process.stdout) if self.process.stdout else None
        self.requests = 0

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET *path*; each answer must come within 10 seconds."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            self.requests += 1
            return response.status, json.loads(response.read())

    def wait_ready(self) -> None:
        for _ in range(200):
            try:
                self.get("/healthz")
                return
            except OSError:
                threading.Event().wait(0.1)
        raise AssertionError("gunicorn did not start")

    def stop(self) -> tuple[bytes, str]:
        """Stop gunicorn (SIGTERM); return its stdout (if piped) and its stderr."""
        self.process.terminate()
        try:
            self.process.wait(timeout=BOUND)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=BOUND)
        out = self.stdout.join() if self.stdout else b""
        return out, self.stderr.join().decode()


@pytest.fixture
def servers() -> Iterator[list[Gunicorn]]:
    started: list[Gunicorn] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=BOUND)


def test_gunicorn_with_a_stdout_nobody_reads_keeps_answering_healthz(
    servers: list[Gunicorn],
) -> None:
    server = Gunicorn(MINA_LOG_BUFFER_BYTES="16384")
    servers.append(server)
    server.wait_ready()

    # Each request writes one line; after the pipe (64 KiB) and the buffer fill up,
    # lines are dropped, and /healthz still answers, within its 10 s each time.
    for _ in range(3000):
        status, body = server.get("/healthz")
        if body["dropped"]:
            break
    assert (200, {"status": "ok", "logging": "degraded", "reason": "stdout_buffer_full"}) == (
        status,
        {key: value for key, value in body.items() if key not in ("dropped", "outbox", "sentry")},
    )

    assert server.stdout is not None
    server.stdout.start()  # someone reads stdout again: the worker drains and reports
    for _ in range(200):
        status, body = server.get("/healthz")
        if body["logging"] == "ok":
            break
        threading.Event().wait(0.05)
    out, err = server.stop()

    lines = parse(out)
    finished = [line for line in lines if line["event"] == "request.finished"]
    reports = dropped_reports(lines)
    assert {"status": "ok", "logging": "ok"} == {
        k: v for k, v in body.items() if k in ("status", "logging")
    }
    assert body["dropped"] == sum(report["dropped"] for report in reports)
    assert server.requests == len(finished) + body["dropped"]
    assert {"buffer_full"} == {report["reason"] for report in reports}
    assert "Traceback" not in err


def test_gunicorn_with_stdout_closed_starts_and_says_so_once(servers: list[Gunicorn]) -> None:
    server = Gunicorn(">&-")
    servers.append(server)
    server.wait_ready()

    status, body = server.get("/healthz")
    _, err = server.stop()

    assert 200 == status
    assert {"status": "ok", "logging": "degraded", "reason": "stdout_closed"} == {
        key: value for key, value in body.items() if key not in ("dropped", "outbox", "sentry")
    }
    notices = err.splitlines()
    assert ["mina: stdout is closed; log lines are dropped and counted"] == [
        line for line in notices if "closed;" in line
    ]
    # At exit, master and worker each count what they could not write.
    assert 2 == len(notices) - 1
    assert all(
        re.fullmatch(r"mina: \d+ log lines? not written to stdout \(closed\)", line)
        for line in notices[1:]
    )


def test_gunicorn_with_stdout_on_dev_full_answers_and_says_it_once_per_process(
    servers: list[Gunicorn],
) -> None:
    server = Gunicorn(">/dev/full")
    servers.append(server)
    server.wait_ready()

    answers = [server.get("/healthz") for _ in range(200)]
    _, err = server.stop()

    enospc = "ENOSPC (No space left on device)"
    assert {200} == {status for status, _ in answers}
    assert {"status": "ok", "logging": "degraded", "reason": f"stdout_write_failed: {enospc}"} == {
        key: value
        for key, value in answers[-1][1].items()
        if key not in ("dropped", "outbox", "sentry")
    }
    assert answers[-1][1]["dropped"] >= 200
    notices = err.splitlines()
    problem = f"mina: cannot write to stdout: {enospc}; log lines are dropped and counted"
    assert [problem, problem] == [line for line in notices if line == problem]  # master, worker
    assert 4 == len(notices)


# --- a unit of work's lines written together (begin_batch) -------------------------------


def readable(stream: IO[bytes]) -> bytes:
    """What the pipe holds right now (nothing: b""), without waiting for more."""
    os.set_blocking(stream.fileno(), False)
    try:
        return os.read(stream.fileno(), 65536)
    except BlockingIOError:
        return b""
    finally:
        os.set_blocking(stream.fileno(), True)


@pytest.fixture
def batched(
    pipe: tuple[IO[bytes], IO[bytes]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[IO[bytes], LineWriter]]:
    """A pipe's read end and a writer on its write end that `find_writer` returns."""
    reader_end, writer_end = pipe
    handler = LineHandler(writer_end)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    yield reader_end, handler.writer
    handler.close()


def test_a_batch_is_written_in_one_piece_when_it_ends(
    batched: tuple[IO[bytes], LineWriter],
) -> None:
    reader_end, writer = batched
    token = begin_batch()
    for n in range(3):
        assert writer.submit(b'{"n":%d}\n' % n)
    held = readable(reader_end)
    end_batch(token)

    assert b"" == held
    assert b'{"n":0}\n{"n":1}\n{"n":2}\n' == readable(reader_end)
    writer.submit(b'{"n":3}\n')  # the batch is over: written at once
    assert b'{"n":3}\n' == readable(reader_end)


def test_a_warning_writes_what_was_held_and_itself_at_once(
    batched: tuple[IO[bytes], LineWriter],
) -> None:
    reader_end, writer = batched
    token = begin_batch()
    writer.submit(b'{"n":0}\n')
    writer.submit(b'{"n":1,"level":"warning"}\n', urgent=True)
    at_warning = readable(reader_end)
    writer.submit(b'{"n":2}\n')
    after = readable(reader_end)
    end_batch(token)

    assert b'{"n":0}\n{"n":1,"level":"warning"}\n' == at_warning
    assert b"" == after  # held again until the end
    assert b'{"n":2}\n' == readable(reader_end)


def test_a_batch_never_grows_past_one_atomic_write(
    batched: tuple[IO[bytes], LineWriter],
) -> None:
    reader_end, writer = batched
    line = b'{"pad":"' + b"x" * 1000 + b'"}\n'
    fit = select.PIPE_BUF // len(line)
    token = begin_batch()
    for _ in range(fit + 1):
        writer.submit(line)
    written = readable(reader_end)
    end_batch(token)

    assert line * fit == written  # the lines that fitted, before the one that did not
    assert line == readable(reader_end)


def test_a_held_line_is_written_by_the_writer_thread_when_nothing_follows(
    batched: tuple[IO[bytes], LineWriter],
) -> None:
    # A request that hangs after a line: the line must not wait for the request's end,
    # which may never come (a worker timeout then kills the process).
    reader_end, writer = batched
    token = begin_batch()
    writer.submit(b'{"n":0}\n')
    held = readable(reader_end)
    line = read_line(reader_end)  # after about BATCH_WAIT, with no end_batch
    end_batch(token)

    assert (b"", '{"n":0}\n') == (held, line)


def test_flush_writes_what_batches_hold(batched: tuple[IO[bytes], LineWriter]) -> None:
    reader_end, writer = batched
    token = begin_batch()
    writer.submit(b'{"n":0}\n')
    assert writer.flush(timeout=BOUND)
    flushed = readable(reader_end)
    end_batch(token)

    assert b'{"n":0}\n' == flushed


def test_a_stream_without_a_descriptor_holds_lines_without_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A test's capture (io.StringIO) shows what a pipe would, but has no writer thread
    # to write held lines: flush() (and the exit path through it) does.
    stream = io.StringIO()
    handler = LineHandler(stream)
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    token = begin_batch()
    handler.writer.submit(b'{"n":0}\n')
    held = stream.getvalue()
    handler.writer.flush()
    flushed = stream.getvalue()
    end_batch(token)

    assert ("", '{"n":0}\n', None) == (held, flushed, handler.writer._thread)


def test_lines_a_hung_request_holds_are_written_at_exit(tmp_path: Path) -> None:
    # gunicorn's worker timeout sends SIGABRT, which ends the worker through sys.exit
    # while a request thread is stuck: what that request held is written at exit.
    path = script(
        tmp_path,
        """
        import threading
        from mina.observability.stream import begin_batch

        held = threading.Event()

        def request():
            begin_batch()
            log.info("request.step", n=1)
            held.set()
            threading.Event().wait()  # hangs

        threading.Thread(target=request, daemon=True).start()
        held.wait(10)
        sys.exit(3)
        """,
    )
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env=env(), timeout=BOUND
    )

    assert 3 == result.returncode
    assert [("request.step", 1)] == [
        (line["event"], line["n"]) for line in parse(result.stdout.encode())
    ]


def test_only_the_thread_that_began_a_batch_holds_its_lines(
    batched: tuple[IO[bytes], LineWriter],
) -> None:
    # A background job runs in a copy of the request's context: it must not add its
    # lines to a batch the request may write (or have written) without them.
    reader_end, writer = batched
    token = begin_batch()
    job = threading.Thread(target=contextvars.copy_context().run, args=(writer.submit, b"job\n"))
    job.start()
    job.join(timeout=BOUND)
    from_job = readable(reader_end)
    end_batch(token)

    assert b"job\n" == from_job


def test_batches_can_be_turned_off(
    pipe: tuple[IO[bytes], IO[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader_end, writer_end = pipe
    handler = LineHandler(writer_end, batch=False)  # MINA_LOG_BATCH=0
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    token = begin_batch()
    handler.writer.submit(b"now\n")
    assert (None, b"now\n") == (token, readable(reader_end))
    handler.close()


# --- what a writer says, and what health reports ---------------------------------------------


def fill(writer_end: IO[bytes]) -> None:
    """Fill the pipe *writer_end* writes to until it takes nothing more."""
    os.set_blocking(writer_end.fileno(), False)
    try:
        while True:
            os.write(writer_end.fileno(), b"#" * 4096)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(writer_end.fileno(), True)


def test_an_unknown_policy_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"^when_full must be one of drop_newest, block: 'x'$"):
        LineWriter(io.StringIO(), when_full="x")


def test_a_writer_without_a_report_hook_writes_its_own_dropped_line(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end, buffer_bytes=100)
    fill(writer_end)
    accepted = [writer.submit(b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * 40)) for n in range(10)]
    during = writer.health()
    reader = Reader(reader_end).start()
    for _ in range(BOUND * 20):  # until the writer has drained and reported
        if writer.flush(timeout=BOUND) and writer.health().state == "ok":
            break
        threading.Event().wait(0.05)
    writer_end.close()
    lines = parse(reader.join().replace(b"#", b""))

    dropped = accepted.count(False)
    # The first line is always taken; with 55-byte lines in 100 bytes, some are dropped.
    assert (True, True) == (accepted[0], dropped > 0)
    assert ("degraded", dropped, "stdout_buffer_full") == during
    assert [n for n, ok in enumerate(accepted) if ok] == [line["n"] for line in lines[:-1]]
    assert {
        "level": "warning",
        "logger": "mina.observability.stream",
        "event": "log.dropped",
        "dropped": dropped,
        "reason": "buffer_full",
    } == without_timestamp(lines[-1])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lines[-1]["timestamp"])
    assert ("ok", dropped, None) == writer.health()  # the count stays: since start


def test_a_stream_that_stops_taking_lines_is_reported_stalled_then_ok_again(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end, name="out")
    fill(writer_end)
    writer.submit(b'{"n":0}\n')
    waiting = writer.health()
    threading.Event().wait(1.2)  # longer than STALL_AFTER (1 s) without progress
    stalled = writer.health()
    reader = Reader(reader_end).start()
    assert writer.flush(timeout=BOUND)

    assert (("ok", 0, None), ("degraded", 0, "out_stalled")) == (waiting, stalled)
    assert ("ok", 0, None) == writer.health()
    writer_end.close()
    assert reader.join().endswith(b'{"n":0}\n')


def test_health_of_the_process_sums_every_writer(tmp_path: Path) -> None:
    from mina.observability import stream

    with open(tmp_path / "a.log", "wb") as ok_file:
        ok = LineWriter(ok_file, name="a")
        closed = LineWriter(None, name="b")
        closed.submit(b"lost\n")
        closed.submit(b"lost\n")
        try:
            total = stream.health()
        finally:
            ok.close()
            closed.close()

    assert total is not None
    assert ("degraded", "b_closed") == (total.state, total.reason)
    assert total.dropped >= 2


def test_a_closed_text_stream_is_said_once_and_its_lines_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    writer = LineWriter(stream, name="capture")
    assert writer.submit("é\n".encode())  # a text stream gets text
    written = stream.getvalue()
    stream.close()

    accepted = [writer.submit(b"x\n") for _ in range(3)]

    assert ("é\n", [False, False, False]) == (written, accepted)
    assert ("degraded", 3, "capture_closed") == writer.health()
    assert (
        "mina: cannot write to capture: EBADF (closed); log lines are dropped and counted\n"
    ) == capsys.readouterr().err


def test_a_binary_stream_without_a_descriptor_gets_the_bytes() -> None:
    stream = io.BytesIO()
    writer = LineWriter(stream)

    assert writer.submit("é\n".encode())
    assert "é\n".encode() == stream.getvalue()


def record(message: str) -> logging.LogRecord:
    """An info record of *message*."""
    return logging.LogRecord("mina.test", logging.INFO, __file__, 0, message, (), None)


def test_set_stream_writes_what_the_old_stream_was_given_then_switches(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    handler = LineHandler(writer_end)
    handler.setFormatter(logging.Formatter("%(message)s"))
    fill(writer_end)
    reader = Reader(reader_end).start()
    handler.emit(record("to the pipe"))
    new = io.StringIO()

    old = handler.setStream(new)
    handler.emit(record("to the new stream"))
    same = handler.setStream(new)
    handler.close()
    writer_end.close()

    assert (writer_end, None) == (old, same)
    assert reader.join().replace(b"#", b"") == b"to the pipe\n"
    assert "to the new stream\n" == new.getvalue()
    assert "<LineHandler stream (NOTSET)>" == repr(handler)


def test_a_closed_writer_starts_again_for_a_later_line(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end)
    writer.submit(b"before\n")
    writer.close()
    fill(writer_end)  # the next line needs the writer thread

    writer.submit(b"after\n")
    reader = Reader(reader_end).start()
    assert writer.flush(timeout=BOUND)
    writer_end.close()

    assert b"before\nafter\n" == reader.join().replace(b"#", b"")


def test_exit_with_one_line_lost_says_it_in_the_singular(tmp_path: Path) -> None:
    result = run_with_stdout(tmp_path, ">&-", 'log.info("one")\n')

    assert [
        "mina: stdout is closed; log lines are dropped and counted",
        "mina: 1 log line not written to stdout (closed)",
    ] == result.stderr.splitlines()


def test_a_reader_that_went_away_is_said_once_and_later_lines_are_counted(
    pipe: tuple[IO[bytes], IO[bytes]], capsys: pytest.CaptureFixture[str]
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end, name="out")
    reader_end.close()

    writer.submit(b'{"n":0}\n')
    writer.flush(timeout=BOUND)
    later = [writer.submit(b'{"n":%d}\n' % n) for n in (1, 2)]

    assert [False, False] == later
    assert ("degraded", 3, "out_broken_pipe") == writer.health()
    assert (
        "mina: out: broken pipe (its reader went away); log lines are dropped and counted\n"
    ) == capsys.readouterr().err


def test_a_descriptor_someone_made_non_blocking_still_gets_every_line(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end, buffer_bytes=64 * 1024 * 1024)
    fill(writer_end)
    os.set_blocking(writer_end.fileno(), False)
    lines = [b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * 300) for n in range(1000)]
    try:
        accepted = [writer.submit(line) for line in lines]
        reader = Reader(reader_end).start()
        assert writer.flush(timeout=BOUND)
    finally:
        os.set_blocking(writer_end.fileno(), True)
    writer_end.close()

    assert all(accepted)
    assert b"".join(lines) == reader.join().replace(b"#", b"")
    assert ("ok", 0, None) == writer.health()


def test_a_forked_child_writes_its_own_lines_not_the_parents_again(tmp_path: Path) -> None:
    # gunicorn forks workers from a master that logged: what the master had buffered is
    # the master's to write, once.
    path = tmp_path / "fork.py"
    path.write_text(
        textwrap.dedent(
            """
            import os, sys
            from mina.observability.stream import LineWriter

            writer = LineWriter(sys.stdout.buffer)
            for n in range(2000):  # far more than the pipe holds: most wait in the buffer
                writer.submit(b'{"n":%d,"pad":"%s"}\\n' % (n, b"x" * 100))
            pid = os.fork()
            if pid == 0:
                writer.submit(b'{"n":"child"}\\n')
                writer.flush(timeout=60)
                os._exit(0)
            sys.stderr.write("forked\\n")
            sys.stderr.flush()
            os.waitpid(pid, 0)
            writer.flush(timeout=60)
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        start_new_session=True,  # the child too can be killed, if it hangs
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        assert "forked\n" == read_line(process.stderr)
        reader = Reader(process.stdout).start()
        process.wait(timeout=BOUND)
        lines = [line["n"] for line in parse(reader.join())]
    finally:
        with contextlib.suppress(ProcessLookupError):  # gone already: nothing to stop
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=BOUND)

    assert 0 == process.returncode
    assert sorted([*range(2000), "child"], key=str) == sorted(lines, key=str)
    assert list(range(2000)) == [n for n in lines if n != "child"]


def test_flush_gives_up_after_its_timeout_on_a_stream_nobody_reads(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end)
    fill(writer_end)
    writer.submit(b'{"n":0}\n')

    stuck = writer.flush(timeout=0.2)
    reader = Reader(reader_end).start()
    drained = writer.flush(timeout=BOUND)
    writer_end.close()

    assert (False, True) == (stuck, drained)
    assert reader.join().endswith(b'{"n":0}\n')


def test_block_waits_once_for_a_stalled_stream_then_drops_without_waiting(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    writer = LineWriter(writer_end, buffer_bytes=64, when_full="block", block_timeout=0.3)
    fill(writer_end)
    line = b'{"pad":"' + b"x" * 40 + b'"}\n'
    writer.submit(line)  # taken by the writer thread, which waits for the reader
    writer.submit(line)  # queued

    first = writer.submit(line)  # waits 0.3 s for room, then drops
    submitted_at = time.monotonic()
    rest = [writer.submit(line) for _ in range(20)]
    rest_took = time.monotonic() - submitted_at
    reader = Reader(reader_end).start()
    assert writer.flush(timeout=BOUND)
    writer_end.close()

    assert (False, [False] * 20) == (first, rest)
    assert rest_took < 3.0  # 20 waits of 0.3 s would be 6 s; none is made
    assert 2 == reader.join().replace(b"#", b"").count(line)
    assert 21 == writer.health().dropped


def test_a_record_a_filter_refuses_is_not_written(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    handler = LineHandler(writer_end)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda r: r.getMessage() != "secret")

    handled = [handler.handle(record(message)) for message in ("secret", "kept")]
    handler.close()

    assert [False, True] == handled
    assert b"kept\n" == readable(reader_end)


def read_exactly(stream: IO[bytes], size: int) -> bytes:
    """*size* bytes of the pipe *stream*, waiting at most BOUND seconds for them."""
    data = b""
    deadline = time.monotonic() + BOUND
    while len(data) < size:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"{len(data)} of {size} bytes after {BOUND}s"
        data += os.read(stream.fileno(), size - len(data))
    return data


def test_a_long_line_in_a_batch_goes_at_once_after_what_was_held(
    batched: tuple[IO[bytes], LineWriter],
) -> None:
    reader_end, writer = batched
    long = b'{"pad":"' + b"x" * (select.PIPE_BUF + 100) + b'"}\n'
    token = begin_batch()
    writer.submit(b'{"n":0}\n')
    writer.submit(long)
    at_once = read_exactly(reader_end, len(b'{"n":0}\n' + long))  # by the writer thread
    writer.submit(b'{"n":1}\n')
    held = readable(reader_end)
    end_batch(token)

    assert (b'{"n":0}\n' + long, b"") == (at_once, held)
    assert b'{"n":1}\n' == readable(reader_end)


def test_text_a_print_left_in_the_stream_comes_before_the_first_line(
    pipe: tuple[IO[bytes], IO[bytes]],
) -> None:
    reader_end, writer_end = pipe
    text = io.TextIOWrapper(writer_end, encoding="utf-8", write_through=False)
    text.write("printed before logging was set up\n")  # still in the wrapper's buffer

    writer = LineWriter(text)
    writer.submit(b'{"n":0}\n')

    assert b'printed before logging was set up\n{"n":0}\n' == readable(reader_end)
