"""`LineWriter`: the callers' side of a bounded buffer of complete lines.

A line is written at once when that cannot block (`_READY`), else queued under ``when_full``
for `mina.observability.stream_thread`; a batch's lines are held (`_Batch`); flush, close, health.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import io
import os
import select
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import IO, Any, Final, NamedTuple

from mina.observability.stream_thread import (
    _PIPE_BUF,
    BATCH_WAIT,
    WriterThread,
    _fileno,
    _lines,
    _never_blocks,
    _notice,
)

__all__ = ["EXIT_TIMEOUT", "WHEN_FULL", "Health", "LineWriter"]

#: Accepted values of ``MINA_LOG_WHEN_FULL``: the policy when the buffer is full.
WHEN_FULL: Final = ("drop_newest", "block")
#: Seconds the process waits at exit for the stream to take what was accepted.
EXIT_TIMEOUT: Final = 2.0
#: Seconds without progress, lines waiting, after which the stream counts as stalled.
STALL_AFTER: Final = 1.0
#: Whether a caller may write a line itself when the descriptor polls writable. On Linux
#: a pipe polls writable only with a whole page (PIPE_BUF bytes) free, so a write of at
#: most PIPE_BUF bytes then completes at once, and files and terminals take it at once
#: too. The writer thread is then woken only for a full pipe or a long line: a thread
#: woken for every line would take the GIL back and forth with the request threads.
_READY: Final = sys.platform.startswith("linux")


class Health(NamedTuple):
    """What ``/healthz`` says about logging: ``state`` is ``ok`` or ``degraded``.

    ``dropped`` counts every line dropped since the process started; ``reason`` says
    why the state is degraded (``None`` when ok).
    """

    state: str
    dropped: int
    reason: str | None


class LineWriter(WriterThread):
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
        super()._init_state()
        self._held: set[_Batch] = set()  # batches holding lines (see begin_batch)

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
