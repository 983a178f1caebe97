"""stdout that nobody reads, that is closed or full: the service answers, drops are counted.

Real pipes, real subprocesses and real gunicorn; the test reads a pipe only when it
means to, so "nobody reads" is what the process really sees.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import queue
import random
import re
import select
import socket
import subprocess
import sys
import textwrap
import threading
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
        key: value for key, value in body.items() if key != "dropped"
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
    } == {key: value for key, value in body.items() if key != "dropped"}
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
        {key: value for key, value in body.items() if key != "dropped"},
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
    assert {"status": "ok", "logging": "ok"} == {k: v for k, v in body.items() if k != "dropped"}
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
        key: value for key, value in body.items() if key != "dropped"
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
        key: value for key, value in answers[-1][1].items() if key != "dropped"
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
