"""Writing log lines to stdout without letting stdout stop the service.

A stream that nobody reads (``gunicorn ... | sleep 3600``) fills its pipe, and a
``write`` to it then blocks for as long as the pipe stays full. Written from the
request threads, as `logging.StreamHandler` does, that stops every request, the health
check included. Here a calling thread writes only what cannot block: a line of at most
``PIPE_BUF`` bytes, when nothing waits before it and the descriptor polls writable (on
Linux). Every other line goes to a `LineWriter`, which keeps a bounded buffer and writes
from one thread of its own, the way log shippers put a buffer with a ``when_full``
policy in front of a slow sink::

    request threads ──► LineHandler.emit: format, encode ──► LineWriter.submit(line)
    (a fast path with an already-encoded line calls submit directly)   │
                  in a request: held, written together (begin_batch)   │
                                                   bounded buffer (bytes), when full:
                                                   drop_newest (count it) or block
                                                   for a while, then drop and count
                                                                       │
                                       one writer thread: os.write, whole lines only

What it promises:

- Every line is written whole by one thread, so lines from threads never interleave
  or split; a partial ``write`` is continued before anything else is written. Lines
  are grouped into one ``write`` only up to ``PIPE_BUF`` bytes, so on a pipe shared by
  several processes (gunicorn's workers) those writes are atomic as well.
- When the buffer is full the policy decides; every dropped line is counted, and once
  the stream drains one ``log.dropped`` line (``dropped``, ``reason``) says how many.
  `health` tells ``/healthz`` whether logging is degraded.
- A closed stdout (``>&-``), a reader that went away (EPIPE) or a full device
  (``/dev/full``, ENOSPC) is said once, in one line on stderr; the lines are dropped
  and counted, and the service goes on.
- At exit (normal return, ``sys.exit``, an uncaught exception, gunicorn's graceful
  worker exit) what was accepted is written if the stream takes it within
  `EXIT_TIMEOUT` seconds; what is left is counted in one line on stderr. A process
  killed by a signal it does not handle (SIGKILL, a crash in C) or ended by
  ``os._exit`` loses what is still buffered, at most the buffer.

Streams without a file descriptor (``io.StringIO``, test capture) cannot block the
way a pipe does; lines go to them directly, on the calling thread.

Over 400 lines because the buffer, its writer thread, the drop accounting and the fork
and exit handling share one lock and one state; apart, each would reach into the others.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import errno
import io
import logging
import os
import select
import stat
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any, Final, NamedTuple

import orjson

__all__ = [
    "BATCH_WAIT",
    "EXIT_TIMEOUT",
    "URGENT_LEVEL",
    "WHEN_FULL",
    "Health",
    "LineHandler",
    "LineWriter",
    "begin_batch",
    "end_batch",
    "find_writer",
    "health",
]

#: Accepted values of ``MINA_LOG_WHEN_FULL``: the policy when the buffer is full.
WHEN_FULL: Final = ("drop_newest", "block")
#: Seconds the process waits at exit for the stream to take what was accepted.
EXIT_TIMEOUT: Final = 2.0
#: Seconds a held line (`begin_batch`) waits before the writer thread writes it anyway;
#: the thread looks twice in that time, so no line is held much longer than 1.5 times it.
BATCH_WAIT: Final = 0.5
#: Lines at this level and above are urgent: they and what a batch holds go at once.
URGENT_LEVEL: Final = logging.WARNING
#: Seconds without progress, lines waiting, after which the stream counts as stalled.
STALL_AFTER: Final = 1.0
#: The logger name of the ``log.dropped`` report.
LOGGER_NAME: Final = "mina.observability.stream"

_PIPE_BUF: Final = select.PIPE_BUF
#: Whether a caller may write a line itself when the descriptor polls writable. On Linux
#: a pipe polls writable only with a whole page (PIPE_BUF bytes) free, so a write of at
#: most PIPE_BUF bytes then completes at once, and files and terminals take it at once
#: too. The writer thread is then woken only for a full pipe or a long line: a thread
#: woken for every line would take the GIL back and forth with the request threads.
_READY: Final = sys.platform.startswith("linux")
# The stream is gone for good: nothing written later can succeed.
_FATAL: Final = frozenset({errno.EPIPE, errno.ECONNRESET, errno.EBADF})


class Health(NamedTuple):
    """What ``/healthz`` says about logging: ``state`` is ``ok`` or ``degraded``.

    ``dropped`` counts every line dropped since the process started; ``reason`` says
    why the state is degraded (``None`` when ok).
    """

    state: str
    dropped: int
    reason: str | None


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


class LineWriter:
    """A bounded buffer of complete lines, written to one stream by one thread.

    :param stream: a binary or text stream, or ``None`` for a closed stdout. With a
        file descriptor, lines are written to it with `os.write` from the writer
        thread; without one (``io.StringIO``), on the calling thread.
    :param buffer_bytes: the most bytes waiting to be written; a line larger than the
        whole buffer is still taken when the buffer is empty.
    :param when_full: ``drop_newest`` drops a line that does not fit; ``block`` makes
        the caller wait up to *block_timeout* seconds for room, then drops it. After
        such a timeout, callers do not wait again until the stream makes progress, so
        a stalled stream costs one timeout, not one per line.
    :param on_dropped: called on the writer thread with ``(count, reason)`` when the
        stream has drained after drops; it should submit one line saying so. Without
        it the writer submits a minimal JSON line itself.
    :param name: the stream's name in messages (``stdout``).
    :param batches: whether `begin_batch` holds lines for this writer.
    """

    def __init__(
        self,
        stream: IO[Any] | None,
        *,
        buffer_bytes: int = 4 * 1024 * 1024,
        when_full: str = "drop_newest",
        block_timeout: float = 1.0,
        on_dropped: Callable[[int, str], None] | None = None,
        name: str = "stdout",
        batches: bool = True,
    ) -> None:
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}: {when_full!r}")
        self.name = name
        self.batches = batches
        self.on_dropped = on_dropped
        self._capacity = buffer_bytes
        self._block = when_full == "block"
        self._block_timeout = block_timeout
        self._stream = stream
        self._fd = None if stream is None else _fileno(stream)
        self._ready: Any = None  # polls whether the descriptor takes a line at once
        self._writable = [(self._fd, select.POLLOUT)]  # what it answers then, and only then
        # A file (or /dev/null) always polls writable: no need to ask for each line.
        self._always_ready = False
        if self._fd is not None and _READY:
            self._ready = select.poll()
            self._ready.register(self._fd, select.POLLOUT)
            self._always_ready = _never_blocks(self._fd)
        if self._fd is not None:
            with contextlib.suppress(Exception):  # text a print() left in its buffer first
                stream.flush()  # type: ignore[union-attr]
        self._binary = stream is not None and not isinstance(stream, io.TextIOBase)
        self._init_state()
        # Gone for good: a closed stdout, or EPIPE. Kept across fork (same descriptor).
        self._fatal: str | None = None
        if stream is None:
            self._fatal = "closed"
            self._said.add("closed")
            _notice(f"{name} is closed; log lines are dropped and counted")
        _writers.add(self)

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
        self._held: set[_Batch] = set()  # batches holding lines (see begin_batch)
        self._ticking = False  # the writer thread wakes every BATCH_WAIT / 2 for them

    def submit(self, line: bytes, *, urgent: bool = False) -> bool:
        """Queue one complete line (UTF-8, ending in ``\\n``) to be written whole.

        Between `begin_batch` and `end_batch`, on the thread that called `begin_batch`,
        the line is held with that unit of work's other lines and written with them
        (see `begin_batch`); *urgent* (a warning or an error) writes the held lines and
        this one at once.

        Never raises, and never blocks longer than the ``block`` policy allows.

        :returns: whether the line was accepted; a refused line is counted as dropped.
        """
        batch = _BATCH.get()
        if batch is None or batch.writer is not self or batch.thread != threading.get_ident():
            return self._submit_lines((line,))
        size = len(line)
        with self._lock:
            if not urgent and batch.size + size <= _PIPE_BUF:
                self._hold_locked(batch, line, size)
                return True
            lines = self._release_locked(batch)
        if urgent or size > _PIPE_BUF:
            lines.append(line)
            return self._submit_lines(lines)
        self._submit_lines(lines)  # a full batch goes; this line starts the next
        with self._lock:
            self._hold_locked(batch, line, size)
        return True

    def _hold_locked(self, batch: _Batch, line: bytes, size: int) -> None:
        if not batch.lines:
            batch.due = time.monotonic() + BATCH_WAIT
            self._held.add(batch)
            # The writer thread now looks at held lines regularly (a stream without a
            # descriptor has none: its held lines wait for the other occasions).
            if not self._ticking and self._fd is not None:
                self._ticking = True
                if self._thread is None:
                    self._start_locked()
                self._changed.notify_all()
        batch.lines.append(line)
        batch.size += size

    def _release_locked(self, batch: _Batch) -> list[bytes]:
        self._held.discard(batch)
        lines = batch.lines
        batch.lines = []
        batch.size = 0
        return lines

    def _end(self, batch: _Batch) -> None:
        with self._lock:
            lines = self._release_locked(batch)
        if lines:
            self._submit_lines(lines)

    def _sweep_locked(self, everything: bool) -> None:
        # Held lines that waited BATCH_WAIT (*everything*: all of them) join the queue,
        # each batch's in order, for the writer thread.
        if not self._held:
            return
        now = time.monotonic()
        for batch in [b for b in self._held if everything or b.due <= now]:
            for line in self._release_locked(batch):
                self._enqueue_locked(line)

    def _submit_lines(self, lines: list[bytes] | tuple[bytes, ...]) -> bool:
        # Queue *lines*, in order; written here at once when they fit one atomic write
        # and the descriptor takes them. Returns whether every line was accepted.
        if self._fd is None:
            return all([self._write_direct(line) for line in lines])
        data = lines[0] if len(lines) == 1 else b"".join(lines)
        with self._lock:
            if self._fatal is not None:
                self._drop_locked(len(lines), self._fatal)
                return False
            size = len(data)
            if (
                size <= _PIPE_BUF
                and not self._queue
                and not self._busy
                and self._ready is not None
                and (self._always_ready or self._ready.poll(0) == self._writable)
            ):
                # Room now: written here, whole, and no thread woken for it (see _READY).
                try:
                    written = os.write(self._fd, data)
                except OSError:  # the writer thread retries it and accounts for a failure
                    written = 0
                if written == size:
                    return True
                if written:  # what is left: the rest of a line, then whole lines
                    pieces = data[written:].split(b"\n")
                    lines = [piece + b"\n" for piece in pieces[:-1]]
                    if pieces[-1]:
                        lines.append(pieces[-1])
            accepted = sum([self._enqueue_locked(line) for line in lines])
            if accepted:
                self._changed.notify_all()
                if self._thread is None and not self._start_locked():
                    return False
            say = accepted < len(lines) and "buffer_full" not in self._said
            if say:
                self._said.add("buffer_full")
        if say:
            _notice(
                f"{self.name} is not keeping up; log lines are dropped and counted "
                "until it drains (MINA_LOG_WHEN_FULL, MINA_LOG_BUFFER_BYTES)"
            )
        return accepted == len(lines)

    def _enqueue_locked(self, line: bytes) -> bool:
        size = len(line)
        if (
            self._queue
            and self._queued + size > self._capacity
            and not self._wait_for_room_locked(size)
        ):
            self._drop_locked(1, "buffer_full")
            return False
        if not self._queue and not self._busy:
            self._since = time.monotonic()
        self._queue.append(line)
        self._queued += size
        return True

    def _wait_for_room_locked(self, size: int) -> bool:
        if not self._block or self._stalled or threading.get_ident() == self._writer_ident:
            return False
        deadline = time.monotonic() + self._block_timeout
        while self._queue and self._queued + size > self._capacity and self._fatal is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stalled = True
                return False
            self._changed.wait(remaining)
        return self._fatal is None

    def _start_locked(self) -> bool:
        self._stopping = False
        thread = threading.Thread(target=self._run, name=f"mina-{self.name}-writer", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: no new threads
            count = len(self._queue)
            self._queue.clear()
            self._queued = 0
            self._drop_locked(count, "shutdown")
            return False
        self._thread = thread
        _writers.add(self)  # again, if it was closed
        return True

    def _drop_locked(self, count: int, reason: str) -> None:
        self._unreported += count
        self._dropped += count
        self._reason = reason

    def _write_direct(self, line: bytes) -> bool:
        # A stream without a descriptor: written on the caller's thread, under the lock
        # so lines stay whole.
        with self._lock:
            if self._fatal is not None:
                self._drop_locked(1, self._fatal)
                return False
            try:
                stream: Any = self._stream
                stream.write(line if self._binary else line.decode("utf-8", "replace"))
                stream.flush()
                return True
            except ValueError:  # I/O on a closed file
                text = self._failed_locked(OSError(errno.EBADF, "closed"), 1)
            except OSError as exc:
                text = self._failed_locked(exc, 1)
        if text is not None:
            _notice(text)
        return False

    # --- the writer thread ---------------------------------------------------------------

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

    # --- callers waiting for it ----------------------------------------------------------

    def flush(self, timeout: float = EXIT_TIMEOUT) -> bool:
        """Wait up to *timeout* seconds until every accepted line is written.

        :returns: whether nothing is left to write.
        """
        if threading.get_ident() == self._writer_ident:
            return True
        if self._fd is None:  # no writer thread: held lines are written here, as all are
            with self._lock:
                held = [self._release_locked(batch) for batch in list(self._held)]
            for lines in held:
                self._submit_lines(lines)
            return True
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._held:  # accepted too: they go now
                self._sweep_locked(everything=True)
                if self._queue and self._thread is None:
                    self._start_locked()
                self._changed.notify_all()
            while self._thread is not None and (
                self._queue or self._busy or self._report_due_locked()
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._exited:
                    break
                self._changed.wait(remaining)
            return not (self._queue or self._busy)

    def close(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Write what is buffered (up to *timeout* seconds), then stop the thread.

        A line submitted later starts it again, so a closed writer still never loses a
        line silently.
        """
        self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        _writers.discard(self)

    def health(self) -> Health:
        """Return whether this writer is ok or degraded, and why."""
        with self._lock:
            if self._fatal is not None:
                reason: str | None = f"{self.name}_{self._fatal}"
            elif self._error is not None:
                reason = f"{self.name}_write_failed: {self._error}"
            elif self._unreported:
                reason = f"{self.name}_{self._reason}"
            elif (self._queue or self._busy) and time.monotonic() - self._since > STALL_AFTER:
                reason = f"{self.name}_stalled"
            else:
                reason = None
            return Health("ok" if reason is None else "degraded", self._dropped, reason)

    def _at_exit(self, timeout: float) -> None:
        drained = self.flush(timeout)
        with self._lock:
            self._exited = True
            left = 0 if drained else len(self._queue) + self._busy
            unreported = self._unreported
            reason = self._reason
        if left:
            _notice(
                f"{self.name} did not take the last {_lines(left)} within {EXIT_TIMEOUT:g} s "
                "of exit; they are lost"
            )
        if unreported:
            _notice(f"{_lines(unreported)} not written to {self.name} ({reason})")

    def _after_fork(self) -> None:
        # The child owns a copy of the parent's buffer and held lines: the parent writes
        # them. Locks held by the parent's threads at fork time are not held in the
        # child: make new ones.
        for batch in self._held:
            batch.lines = []
            batch.size = 0
        self._init_state()


_writers: weakref.WeakSet[LineWriter] = weakref.WeakSet()
_DEFAULT_STREAM: Final[Any] = object()


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A `logging.StreamHandler` whose lines go through a `LineWriter`.

    ``emit`` formats the record and submits one complete line; it never writes and
    never waits on the stream (except as the ``block`` policy allows). Declared in
    ``logging.yaml`` as the ``stdout`` handler; `mina.logging_config.configure_logging`
    passes it the ``MINA_LOG_*`` settings.

    :param stream: the stream (default: ``sys.stdout``, which is ``None`` when the
        process started with stdout closed).
    :param when_full: ``drop_newest`` or ``block`` (see `LineWriter`).
    :param buffer_bytes: the buffer's size in bytes.
    :param block_timeout_ms: how long ``block`` waits for room, in milliseconds.
    :param batch: whether a request's lines are written together (`begin_batch`).
    """

    def __init__(
        self,
        stream: IO[Any] | None = _DEFAULT_STREAM,
        *,
        when_full: str = "drop_newest",
        buffer_bytes: int = 4 * 1024 * 1024,
        block_timeout_ms: int = 1000,
        batch: bool = True,
    ) -> None:
        logging.Handler.__init__(self)  # not StreamHandler's: it turns None into stderr
        self.stream = sys.stdout if stream is _DEFAULT_STREAM else stream
        self._options = {
            "when_full": when_full,
            "buffer_bytes": buffer_bytes,
            "block_timeout": block_timeout_ms / 1000,
            "batches": batch,
        }
        self.writer = self._writer_for(self.stream)

    def _writer_for(self, stream: IO[Any] | None) -> LineWriter:
        name = "stdout" if stream is sys.stdout or stream is None else getattr(stream, "name", "")
        return LineWriter(
            stream,
            on_dropped=self._report_dropped,
            name=name if isinstance(name, str) and name else "stream",
            **self._options,  # type: ignore[arg-type]
        )

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit *record* without the handler lock: the writer keeps order.

        Holding the lock while formatting would make the threads take turns, and
        under ``block`` wait one after the other.
        """
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may swap it
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        """Format *record* and submit it as one line; a full buffer drops it (counted)."""
        try:
            text = self.format(record) + self.terminator
            line = text.encode("utf-8", "backslashreplace")
            self.writer.submit(line, urgent=record.levelno >= URGENT_LEVEL)
        except RecursionError:  # as logging's own handlers do
            raise
        except Exception:
            self.handleError(record)

    def _report_dropped(self, count: int, reason: str) -> None:
        record = logging.LogRecord(
            LOGGER_NAME, logging.WARNING, __file__, 0, "log.dropped", (), None
        )
        record.dropped = count
        record.reason = reason
        self.handle(record)

    def flush(self) -> None:
        """Wait (at most `EXIT_TIMEOUT` seconds) until what was accepted is written."""
        self.writer.flush()

    def setStream(self, stream: IO[Any]) -> IO[Any] | None:
        """Write to *stream* from now on, after what was accepted for the old one."""
        if stream is self.stream:
            return None
        old: IO[Any] | None = self.stream
        self.stream = stream
        self.writer.close()
        _writers.discard(self.writer)
        self.writer = self._writer_for(stream)
        return old

    def close(self) -> None:
        """Write what is buffered (bounded), then release the handler."""
        self.writer.close()
        _writers.discard(self.writer)
        logging.Handler.close(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.writer.name} ({logging.getLevelName(self.level)})>"


def health() -> Health | None:
    """Return logging's health in this process, or ``None`` if no `LineWriter` is in use."""
    states = [writer.health() for writer in list(_writers)]
    if not states:
        return None
    reasons = [state.reason for state in states if state.reason is not None]
    return Health(
        "degraded" if reasons else "ok",
        sum(state.dropped for state in states),
        "; ".join(reasons) if reasons else None,
    )


class _Batch:
    """The lines a unit of work (a request) logged and its writer has not written yet
    (changed under the writer's lock)."""

    __slots__ = ("due", "lines", "size", "thread", "writer")

    def __init__(self, writer: LineWriter) -> None:
        self.writer = writer
        self.thread = threading.get_ident()  # a copied context (a background job) is not it
        self.lines: list[bytes] = []
        self.size = 0
        self.due = 0.0  # when the writer thread takes the held lines (BATCH_WAIT)


_BATCH: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar(
    "mina_log_batch", default=None
)


def begin_batch() -> contextvars.Token[_Batch | None] | None:
    """Hold the lines this thread writes through the stdout handler from now on, and
    write them together; return the token for `end_batch` (None: lines are not held,
    ``MINA_LOG_BATCH=0`` or no `LineHandler`).

    Held lines are written, in one ``write`` each time and in order:

    - at `end_batch` (a request's teardown, which runs after an exception too);
    - at once with a warning or an error (`LineWriter.submit`'s *urgent*), so the
      lines that explain a failure are out before anything else can go wrong;
    - before they would pass ``PIPE_BUF`` bytes, so each write stays atomic on a pipe;
    - by the writer thread once the first has waited `BATCH_WAIT` seconds, so a request
      that hangs has its lines on stdout before a worker timeout kills it;
    - at exit, and by `LineWriter.flush`.

    One write per request instead of one per line: each ``write`` lets go of the GIL,
    and on a busy worker every let-go is a chance of a switch between its threads. A
    process that dies without running Python again (SIGKILL, a crash in C, ``os._exit``)
    loses the info lines its running requests held, at most the last 0.75 s of them, as
    it loses the lines still in the buffer.
    """
    writer = find_writer()
    if writer is None or not writer.batches:
        return None
    return _BATCH.set(_Batch(writer))


def end_batch(token: contextvars.Token[_Batch | None] | None) -> None:
    """Write what the batch `begin_batch` returned *token* for still holds, and stop
    holding lines."""
    if token is None:
        return
    batch = _BATCH.get()
    try:
        _BATCH.reset(token)
    except ValueError:  # ended in another context than the one it began in
        _BATCH.set(None)
    if batch is not None:
        batch.writer._end(batch)


def find_writer(logger: logging.Logger | None = None) -> LineWriter | None:
    """Return the writer of the first `LineHandler` on *logger* (default: root).

    For code that has an already-encoded line: submitting it here keeps it in order
    with the handler's lines and under the same policy.
    """
    for handler in (logger or logging.getLogger()).handlers:
        if isinstance(handler, LineHandler):
            return handler.writer
    return None


def _at_exit() -> None:
    deadline = time.monotonic() + EXIT_TIMEOUT
    for writer in list(_writers):
        writer._at_exit(max(0.0, deadline - time.monotonic()))


def _after_fork() -> None:
    for writer in list(_writers):
        writer._after_fork()


# Runs before logging's own shutdown (registered earlier, so run later), which then
# finds every writer drained or given up on.
atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork)
