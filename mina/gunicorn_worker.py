"""Mina's gunicorn worker: gunicorn's ``gthread`` worker with three of its faults fixed.

`ThreadWorker` is gunicorn's threaded worker (a thread pool behind one event loop) and
differs in three ways, each measured against gunicorn 27's ``gthread``:

- **A request gets a thread once its head has arrived.** ``gthread`` hands a connection to
  a thread as soon as its first byte arrives; the thread then blocks until the blank line
  that ends the head. Eight clients that send half a head and stall held all 2 x 4
  threads, and 63% of ``/healthz`` probes went unanswered (``python -m bench.slow_clients``).
  Here the event loop reads heads itself, without blocking, and a connection whose head is
  not complete within `HEAD_TIMEOUT_SECONDS` is closed. Bodies are still read by the
  request's thread: a client that stalls mid-body holds one thread (nginx in front, as the
  README's deployment section says, buffers bodies too).
- **A quit signal does not deadlock.** ``gthread``'s quit handler (SIGINT, SIGQUIT) shuts
  its thread pool down, taking the pool's non-reentrant lock, on the main thread, which may
  already hold it: while handing a request to the pool (``submit``), or in a first quit
  handler (Ctrl-C sends SIGINT to the master and the workers at once, and the master then
  sends the workers SIGQUIT). The worker then waited for itself until the master's SIGKILL
  30 s later (4 of 14 Ctrl-C stops under load, ``python -m bench.stops``). The handler
  here runs once and leaves the pool to the interpreter's exit.
- **A stopping worker keeps time for its exit flush.** The master SIGKILLs a worker
  ``graceful_timeout`` seconds after asking it to stop, and the worker waited for its
  connections for that same time before starting to flush Sentry and stdout, so a request
  that outlasted the stop ended in a SIGKILL; a thread still blocked on its client then
  kept the interpreter from exiting at all. The worker stops waiting
  `EXIT_RESERVE_SECONDS` earlier, closes the connections of requests still running, and
  does not wait for connections without a complete head.

Only plain HTTP/1.x is read ahead; with TLS or HTTP/2 cleartext configured, connections
go to threads as in ``gthread``. Waiting heads count against gunicorn's
``worker_connections`` (1,000 per worker), past which a worker stops accepting: thousands of
stalled clients are nginx's job. This reaches into gunicorn 27's ``gthread`` internals
(``enqueue_req``, ``finish_request``, ``murder_pending``, ``TConn``, the parser's unreader),
hence the pin ``gunicorn>=27,<28``; `tests/test_gunicorn_worker.py` runs each path through
real gunicorn.
"""

from __future__ import annotations

import contextlib
import errno
import math
import socket
import time
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from gunicorn.workers import base, gthread

from mina.observability.sentry.transport import EXIT_FLUSH_SECONDS
from mina.observability.stream_writer import EXIT_TIMEOUT as STDOUT_EXIT_SECONDS

__all__ = ["EXIT_RESERVE_SECONDS", "HEAD_TIMEOUT_SECONDS", "STOP_SECONDS", "ThreadWorker"]

#: Seconds a client has to finish sending a request head, once it started one (as
#: nginx's ``client_header_timeout`` in `examples/nginx/mina.conf`).
HEAD_TIMEOUT_SECONDS: Final = 10.0
#: Seconds of the graceful timeout kept for the exit: Sentry's flush, stdout's, and one
#: for the interpreter and gunicorn's own bookkeeping.
EXIT_RESERVE_SECONDS: Final = EXIT_FLUSH_SECONDS + STDOUT_EXIT_SECONDS + 1.0
#: Seconds a stop takes at most when no request is running: the exit's flushes, and a
#: second each for gunicorn's master and worker loops to notice (README, "The command line").
STOP_SECONDS: Final = EXIT_RESERVE_SECONDS + 2.0
#: A head larger than this goes to a thread unfinished, where gunicorn's parser refuses it
#: by its own limits (``limit_request_line``, ``limit_request_fields``, ...).
_MAX_HEAD_BYTES: Final = 1 << 20
_READ_BYTES: Final = 64 * 1024
_HEAD_ENDS: Final = (b"\r\n\r\n", b"\n\n")


@dataclass
class _Head:
    """A request head being read by the event loop."""

    deadline: float
    data: bytearray = field(default_factory=bytearray)

    def complete(self) -> bool:
        return len(self.data) > _MAX_HEAD_BYTES or any(end in self.data for end in _HEAD_ENDS)


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker, reading request heads without a thread (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heads: dict[Any, _Head] = {}
        self._running: dict[Any, Future[Any]] = {}  # connections threads are serving
        self._quitting = False
        self._stopped_at: float | None = None
        self._read_ahead = not self.cfg.is_ssl and self.cfg.http2_cleartext == "off"

    def init_process(self) -> None:
        """Start the worker, keeping `EXIT_RESERVE_SECONDS` of the graceful timeout."""
        # The worker's copy of the settings (the master's is untouched): the worker's own
        # wait for its requests ends early enough for the exit flush to fit before the
        # master's SIGKILL, which keeps the full timeout.
        waited = max(self.cfg.graceful_timeout - math.ceil(EXIT_RESERVE_SECONDS), 0)
        self.cfg.set("graceful_timeout", str(waited))  # gunicorn parses it as int(text, 0)
        try:
            super().init_process()  # serves until stopped; SystemExit on a quit
        finally:
            self._end_running()

    def handle_exit(self, sig: int, frame: Any) -> None:
        """Stop gracefully (SIGTERM), noting when."""
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: int, frame: Any) -> None:
        """Quit (SIGINT, SIGQUIT): once, and without touching the thread pool.

        gthread's handler shuts the pool down, which takes the pool's lock; the handler
        runs on the main thread, which may be holding that very lock (in ``submit``, or
        in the first of two quit handlers), and then waits for itself. The interpreter's
        exit shuts the pool down instead, after `_end_running`.
        """
        if self._quitting:
            return
        self._quitting = True
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        base.Worker.handle_quit(self, sig, frame)  # worker_int, then SystemExit

    def enqueue_req(self, conn: Any) -> None:
        """Give *conn* to a thread once its request head is buffered; read it until then."""
        if not self._read_ahead:
            super().enqueue_req(conn)
            return
        head = _Head(time.monotonic() + HEAD_TIMEOUT_SECONDS)
        if conn.parser is not None:  # kept alive: a body drain may have read ahead
            head.data += conn.parser.unreader.take_buffered()
        if head.complete():
            self._submit(conn, bytes(head.data))
            return
        conn.sock.setblocking(False)
        self._heads[conn] = head
        self.poller.register(conn.sock, gthread.selectors.EVENT_READ, partial(self._read, conn))

    def _read(self, conn: Any, _sock: object) -> None:
        head = self._heads[conn]
        try:
            data = conn.sock.recv(_READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
                self.log.debug("Error reading a request head: %s", exc)
            data = b""
        if not data:  # the client went away before finishing its request
            self._drop(conn)
            return
        head.data += data
        if head.complete():
            self.poller.unregister(conn.sock)
            del self._heads[conn]
            self._submit(conn, bytes(head.data))

    def _submit(self, conn: Any, head: bytes) -> None:
        future = self.tpool.submit(self._handle_with_head, conn, head)
        self._running[conn] = future
        future.add_done_callback(partial(self._done, conn))

    def _done(self, conn: Any, future: Future[Any]) -> None:
        self.method_queue.defer(self.finish_request, conn, future)

    def _handle_with_head(self, conn: Any, head: bytes) -> Any:
        """Runs in a thread: the parser reads the buffered head before the socket."""
        try:
            conn.sock.setblocking(True)
            conn.init()
        except OSError:
            return False  # as `handle` does for a socket gone bad: the connection closes
        conn.parser.unreader.unread(head)
        conn.data_ready = True  # data is here: `handle` must not wait on the socket
        return self.handle(conn)

    def finish_request(self, conn: Any, fs: Future[Any]) -> None:
        """A thread is done with *conn* (gthread's bookkeeping follows)."""
        self._running.pop(conn, None)
        super().finish_request(conn, fs)

    def _end_running(self) -> None:
        """Give running requests what is left of the graceful wait, then cut them off.

        A thread blocked on its client (a body that stopped coming, an answer nobody
        reads) would keep the interpreter's exit, which joins the pool's threads, from
        finishing until the master's SIGKILL; closing its socket ends the wait.
        """
        stopped_at = self._stopped_at if self._stopped_at is not None else time.monotonic()
        remaining = stopped_at + self.cfg.graceful_timeout - time.monotonic()
        running = dict(self._running)
        futures.wait(running.values(), timeout=max(remaining, 0.0))
        for conn, future in running.items():
            if not future.done():
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
        # Wakes every idle pool thread. The interpreter's exit wakes only the threads the
        # pool had registered, and a quit landing inside ``submit`` between a new thread's
        # start and its registration left that one waiting forever, and the exit joining
        # it until the master's SIGKILL (py-spy: MainThread in threading._shutdown).
        if self.tpool is not None:
            self.tpool.shutdown(wait=False)

    def _drop(self, conn: Any) -> None:
        self._heads.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):  # already closed
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Close idle connections (gthread's), and heads past their time or at a stop."""
        super().murder_pending()
        now = time.monotonic()
        for conn, head in list(self._heads.items()):
            # A stopping worker serves requests it has, not ones still arriving.
            if not self.alive or head.deadline <= now:
                self._drop(conn)
