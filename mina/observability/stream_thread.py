"""The writer thread of a `LineWriter`: the one thread that writes its buffer to the stream.

It takes whole lines off the queue, groups them into writes of at most ``PIPE_BUF`` bytes,
continues a partial write before anything else, accounts for a failed write (said once on
stderr, `_notice`) and, once the stream drains after drops, reports them in one
``log.dropped`` line. `WriterThread._init_state` makes the state it shares with the
callers' side (`mina.observability.stream_writer.LineWriter`) under one lock. The probes
of a descriptor both sides use (`_fileno`, `_never_blocks`) are here too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

#: Seconds a held line (`begin_batch`) waits before the writer thread writes it anyway;
#: the thread looks twice in that time, so no line is held much longer than 1.5 times it.
BATCH_WAIT: Final = 0.5
#: The logger name of the ``log.dropped`` report.
LOGGER_NAME: Final = "mina.observability.stream"

_PIPE_BUF: Final = select.PIPE_BUF
# The stream is gone for good: nothing written later can succeed.
_FATAL: Final = frozenset({errno.EPIPE, errno.ECONNRESET, errno.EBADF})


def _never_blocks(fd: int) -> bool:
    # A regular file or /dev/null: a write there never waits for a reader. (Pipes,
    # sockets and terminals can fill, and are polled for each line.)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            return True
        return stat.S_ISCHR(info.st_mode) and info.st_rdev == os.stat(os.devnull).st_rdev
    except OSError:
        return False


def _notice(text: str) -> None:
    """Say *text* on stderr in one line, without ever blocking or raising.

    stderr may be the same stalled pipe as stdout: the line is written only if the
    descriptor takes it at once (a write of at most PIPE_BUF bytes to a pipe that polls
    writable does not block), and dropped otherwise.
    """
    stream = sys.stderr
    if stream is None:
        return
    data = f"mina: {text}\n"
    fd = _fileno(stream)
    with contextlib.suppress(Exception):  # stderr gone too: nothing left to tell
        if fd is None:
            stream.write(data)
            stream.flush()
            return
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if poller.poll(0):
            os.write(fd, data.encode("utf-8", "backslashreplace")[:_PIPE_BUF])


def _fileno(stream: Any) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _lines(count: int) -> str:
    return f"{count} log line{'' if count == 1 else 's'}"


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "error")
    return f"{name} ({exc.strerror or exc})"


class WriterThread:
    """The writer thread's half of a `LineWriter`, and the state both halves share."""

    # Set by `LineWriter.__init__` (kept across fork, unlike the state below).
    name: str
    on_dropped: Callable[[int, str], None] | None
    _fd: int | None
    _fatal: str | None

    if TYPE_CHECKING:  # the callers' half, in LineWriter

        def _sweep_locked(self, everything: bool) -> None: ...

        def submit(self, line: bytes, *, urgent: bool = False) -> bool: ...

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[bytes] = deque()
        self._queued = 0  # bytes in _queue
        self._busy = 0  # lines the writer thread took off the queue and is writing
        self._thread: threading.Thread | None = None
        self._writer_ident: int | None = None
        self._stopping = False
        self._stalled = False  # a blocking caller timed out; no waiting until progress
        self._since = time.monotonic()  # of the last progress, or of lines arriving
        self._error: str | None = None  # the last write failed with this (transient)
        self._unreported = 0
        self._reason = ""
        self._dropped = 0
        self._said: set[str] = set()
        self._exited = False
        self._ticking = False  # the writer thread wakes every BATCH_WAIT / 2 for them

    def _drop_locked(self, count: int, reason: str) -> None:
        self._unreported += count
        self._dropped += count
        self._reason = reason

    def _run(self) -> None:
        self._writer_ident = threading.get_ident()
        while True:
            with self._lock:
                while True:
                    self._sweep_locked(everything=self._stopping)
                    if self._queue or self._report_due_locked() or self._stopping:
                        break
                    self._changed.wait(BATCH_WAIT / 2 if self._ticking else None)
                if not self._queue:
                    if self._report_due_locked():
                        count, reason = self._unreported, self._reason
                        self._unreported = 0
                        self._busy = 1
                        batch = None
                    else:  # stopping, and nothing left
                        self._thread = None
                        self._writer_ident = None
                        self._changed.notify_all()
                        return
                else:
                    batch = [self._queue.popleft()]
                    size = len(batch[0])
                    while self._queue and size + len(self._queue[0]) <= _PIPE_BUF:
                        size += len(self._queue[0])
                        batch.append(self._queue.popleft())
                    self._queued -= size
                    self._busy = len(batch)
                    self._changed.notify_all()  # room for callers waiting under `block`
            if batch is None:
                self._report(count, reason)
                with self._lock:
                    self._busy = 0
                    self._changed.notify_all()
                continue
            error = self._write_all(b"".join(batch) if len(batch) > 1 else batch[0])
            text = None
            with self._lock:
                self._busy = 0
                if error is None:
                    self._since = time.monotonic()
                    self._stalled = False
                    self._error = None
                else:
                    text = self._failed_locked(error, len(batch))
                self._changed.notify_all()
            if text is not None:
                _notice(text)

    def _report_due_locked(self) -> bool:
        return (
            self._unreported > 0
            and not self._queue
            and self._error is None
            and self._fatal is None
            and not self._exited
        )

    def _write_all(self, data: bytes) -> OSError | None:
        view = memoryview(data)
        assert self._fd is not None
        try:
            while view:
                try:
                    written = os.write(self._fd, view)
                except BlockingIOError:  # someone made the descriptor non-blocking
                    select.select([], [self._fd], [])
                    continue
                view = view[written:]
        except OSError as exc:
            return exc
        return None

    def _failed_locked(self, exc: OSError, count: int) -> str | None:
        # Count the lost lines; return the line to say on stderr, the first time only.
        reason = _describe(exc)
        if exc.errno in _FATAL:
            self._fatal = "closed" if exc.errno == errno.EBADF else "broken_pipe"
            count += len(self._queue)
            self._queue.clear()
            self._queued = 0
            self._stopping = True
        else:
            self._error = reason
        self._drop_locked(count, self._fatal or reason)
        if reason in self._said:
            return None
        self._said.add(reason)
        if self._fatal == "broken_pipe":
            problem = f"{self.name}: broken pipe (its reader went away)"
        else:
            problem = f"cannot write to {self.name}: {reason}"
        return problem + "; log lines are dropped and counted"

    def _report(self, count: int, reason: str) -> None:
        try:
            if self.on_dropped is not None:
                self.on_dropped(count, reason)
                return
            line = {
                "timestamp": datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z",
                "level": "warning",
                "logger": LOGGER_NAME,
                "event": "log.dropped",
                "dropped": count,
                "reason": reason,
            }
            self.submit(orjson.dumps(line) + b"\n")
        except Exception as exc:  # the report must not kill the writer
            _notice(f"could not report {count} dropped log lines: {type(exc).__name__}")
