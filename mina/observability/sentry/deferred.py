"""Error events finished on a thread of their own, not on the thread that logged them.

sentry-sdk builds an error event on the calling thread from start to end: the scope's
data and event processors, then serialising the event, ``before_send`` (Mina's redaction
walk), the envelope, and the transport's ``capture_envelope`` (Mina's outbox writes a
file). Only the first part needs the caller: the scopes, the request an integration's
event processor reads, the breadcrumb buffer, all of which change once the call returns.
`DeferredEvents` keeps that part on the calling thread and hands the rest to one worker
thread per client::

    log.error(...) ──► scope: tags, user, contexts, breadcrumbs, event processors
    (calling thread)   event id; the session marked errored              │
                                                  bounded queue (EVENTS_MAX); when full
                                                  the caller finishes its event itself
                                                                         │
                           worker thread: serialise, before_send, sample, envelope, transport

What stays the same: the event (id, content, redaction: ``before_send`` still runs, on the
worker), ``sentry_sdk.last_event_id()``, client reports. ``flush()`` and ``close()``
(so also the exit flush) first wait for the queue to empty, within their timeout. A full
queue (a burst of errors faster than the worker) loses nothing: the calling thread then
finishes its event itself, as the SDK would, and ``sentry.events_queue_full`` /
``sentry.events_queue_drained`` say when that starts and how many it took.

What changes: the event reaches the transport (the outbox file) on the worker, normally
within a millisecond of the call, so a process killed with SIGKILL in that moment loses
it, as it loses the stdout lines still in the line buffer. And its values are serialised
there: a mutable value passed to a log call and changed right after it may show the change
in Sentry (the stdout line is always rendered at the call; the SDK's own breadcrumbs are
likewise serialised only when an event is sent).

A process forked after Sentry started (gunicorn's ``preload_app``) starts a worker of its
own for its events (`os.register_at_fork`); what the parent had queued stays the parent's.

Transactions, check-ins, events without a scope, and clients with ``attach_stacktrace``
(the stack must be the caller's) or an ``event_scrubber`` (Mina's options set none) are
captured as the SDK does, on the calling thread.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from typing import Any, Final

from mina.observability.pipeline import get_logger
from mina.observability.sentry.sdk import (
    DEFERRED_HINT,
    CallerPart,
    prepare_in_caller_scope,
    update_session,
)
from mina.observability.sentry.sdk_present import present_serialized
from mina.observability.sentry.transport import LOGGER

__all__ = ["EVENTS_MAX", "DeferredEvents"]

#: Events waiting for the worker (besides the one it is finishing); past it the calling
#: thread finishes its event itself.
EVENTS_MAX: Final = 256
#: Seconds `DeferredEvents.flush` waits for the queue when the caller gives no timeout.
_FLUSH_DEFAULT: Final = 2.0

_log = get_logger(LOGGER)

#: Every instance, for `_after_fork`.
_instances: weakref.WeakSet[DeferredEvents] = weakref.WeakSet()


class DeferredEvents:
    """Finishes *client*'s error events on a worker thread; `install` puts it in place.

    :param client: a ``sentry_sdk.Client`` just made by ``sentry_sdk.init``.
    :param capacity: events that may wait; past it callers finish their own events.
    """

    __slots__ = (
        "__weakref__",
        "_capacity",
        "_capture",
        "_client",
        "_close",
        "_flush",
        "_idle",
        "_lock",
        "_overflowed",
        "_pending",
        "_queue",
        "_stopped",
        "_thread",
    )

    def __init__(self, client: Any, capacity: int = EVENTS_MAX) -> None:
        self._client = client
        self._capacity = capacity
        # The SDK's own methods, bound: what the worker and the wrappers call.
        self._capture = client.capture_event
        self._flush = client.flush
        self._close = client.close
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when nothing is pending
        # put and get in C: waking the worker costs the caller one lock release
        self._queue: queue.SimpleQueue[CallerPart | None] = queue.SimpleQueue()
        self._pending = 0  # queued, or being finished by the worker
        self._overflowed = 0  # events callers finished themselves since the last line
        self._stopped = False
        self._thread: threading.Thread | None = None
        _instances.add(self)

    def install(self) -> DeferredEvents:
        """Put `capture_event`, `flush` and `close` in place of the client's own."""
        client = self._client
        client.capture_event = self.capture_event
        client.flush = self.flush
        client.close = self.close
        return self

    # -- on the calling thread ---------------------------------------------------------------

    def capture_event(self, event: Any, hint: Any = None, scope: Any = None) -> str | None:
        """``Client.capture_event``: the scope's part here, the rest on the worker."""
        options = self._client.options
        if (
            scope is None
            or self._stopped
            or event.get("type") in ("transaction", "check_in")
            or options.get("attach_stacktrace")
            or options.get("event_scrubber") is not None  # it expects the scope's order
        ):
            return self._capture(event, hint, scope)  # type: ignore[no-any-return]
        part = prepare_in_caller_scope(self._client, event, hint, scope)
        if part is None:
            return None
        first = False
        with self._lock:
            if self._thread is None and not self._start_locked():
                pass  # shutting down: the caller finishes its event
            elif self._pending <= self._capacity:  # the one being finished, and the waiting
                self._pending += 1
                self._queue.put(part)  # under the lock: never behind close()'s stop mark
                return part.event_id
            else:
                first = self._overflowed == 0
                self._overflowed += 1
        if first:  # one line when the queue fills up; the worker says how many at the end
            _log.warning("sentry.events_queue_full", queue=self._capacity)
        self._finish(part)  # the caller does its own: slower, but nothing is lost
        return part.event_id

    def _after_fork(self) -> None:
        # In a forked child, before any other thread exists: the parent's worker is not
        # here, and its lock may have been held by a thread that is not here either.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue = queue.SimpleQueue()  # what the parent queued, its worker sends
        self._pending = 0
        self._thread = None
        self._overflowed = 0

    def _start_locked(self) -> bool:
        thread = threading.Thread(
            target=self._run, args=(self._queue,), name="mina-sentry-events", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down: callers finish their events
            self._stopped = True
            return False
        self._thread = thread
        return True

    # -- the worker thread -------------------------------------------------------------------

    def _run(self, parts: queue.SimpleQueue[CallerPart | None]) -> None:
        while (part := parts.get()) is not None:  # None: stop
            with self._lock:
                overflowed, self._overflowed = self._overflowed, 0  # there is room again
            if overflowed:
                _log.warning("sentry.events_queue_drained", finished_by_callers=overflowed)
            self._finish(part)
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()
        with self._lock:
            self._thread = None
            self._idle.notify_all()

    def _finish(self, part: CallerPart) -> None:
        try:
            del part.hint[DEFERRED_HINT]  # presented here, now, as the caller's scope skipped it
            present_serialized(part.event, part.hint, self._client)
            sent = self._capture(part.event, part.hint, None)
            if sent is not None and part.session is not None:
                update_session(self._client, part.session, part.event)
        except Exception as exc:  # the SDK guards its hooks; anything else is counted
            transport = self._client.transport
            if transport is not None:
                transport.record_lost_event("internal_sdk_error", data_category="error")
            _log.warning("sentry.event_failed", error=type(exc).__name__, detail=str(exc)[:200])

    # -- flush and close ---------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for every queued event to reach the transport."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._thread is threading.current_thread():
                return not self._pending  # a hook on the worker flushing: it cannot wait on itself
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    break
                self._idle.wait(remaining)
            return not self._pending

    def flush(self, timeout: float | None = None, callback: Any = None) -> None:
        """``Client.flush``: the queue first, then the SDK's flush with the time left."""
        budget = timeout if timeout is not None else _FLUSH_DEFAULT
        start = time.monotonic()
        self.drain(budget)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        self._flush(timeout=left, callback=callback)

    def close(self, timeout: float | None = None, callback: Any = None) -> None:
        """``Client.close``: the queue first, the worker stopped, then the SDK's close (whose
        flush finds the queue empty); later events are captured on the calling thread."""
        start = time.monotonic()
        self.drain(timeout if timeout is not None else _FLUSH_DEFAULT)
        with self._lock:
            self._stopped = True
            thread = self._thread
            if thread is not None:
                self._queue.put(None)  # after what is queued: the worker finishes it first
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
        self._close(timeout=left, callback=callback)


def _after_fork() -> None:
    for deferred in list(_instances):
        deferred._after_fork()


os.register_at_fork(after_in_child=_after_fork)
