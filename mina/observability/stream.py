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

Its parts: this module is the handler (`LineHandler`), the batch API (`begin_batch`,
`end_batch`), `health` and the exit and fork hooks; `mina.observability.stream_writer`
holds `LineWriter`, the callers' side of the buffer, and `mina.observability.stream_thread`
its writer thread.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import sys
import time
from typing import IO, Any, Final

from mina.observability.stream_thread import LOGGER_NAME
from mina.observability.stream_writer import (
    _BATCH,
    EXIT_TIMEOUT,
    Health,
    LineWriter,
    _Batch,
    _writers,
)

__all__ = [
    "URGENT_LEVEL",
    "LineHandler",
    "begin_batch",
    "end_batch",
    "find_writer",
    "health",
]

#: Lines at this level and above are urgent: they and what a batch holds go at once.
URGENT_LEVEL: Final = logging.WARNING

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
