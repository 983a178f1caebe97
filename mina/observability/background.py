"""Background work that keeps the context of the request that started it.

`submit` runs a function in a thread pool with a copy of the caller's log context and
Sentry scope, both taken when it is called: the job's lines carry the request's
``request_id``, user and meeting, and the job is its own Sentry transaction, continuing
the request's trace. A job that raises is logged once (``background.failed``, an ERROR:
the Sentry event) and the exception is kept on the returned future. At most
`MAX_PENDING` jobs wait or run at once; past that `submit` raises `BackgroundBusy`
rather than queue without bound.

Jobs must not touch Flask's ``request`` or ``g``: the copied context still points at the
request, which has usually ended by the time the job runs.
"""

from __future__ import annotations

import atexit
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

import sentry_sdk
from sentry_sdk.scope import use_isolation_scope

from mina.observability.pipeline import get_logger

__all__ = ["MAX_PENDING", "BackgroundBusy", "shutdown", "submit"]

P = ParamSpec("P")
T = TypeVar("T")

_MAX_WORKERS: Final = 4
#: Jobs waiting or running at once, per process.
MAX_PENDING: Final = 16
_log = get_logger("mina.background")
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_slots = threading.BoundedSemaphore(MAX_PENDING)


class BackgroundBusy(RuntimeError):
    """`MAX_PENDING` jobs are already waiting or running; try again later."""


def _pool() -> ThreadPoolExecutor:
    # Created on first use, per process: a pool made before gunicorn forks would have no
    # threads in the workers.
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="mina-background")
        return _executor


def submit(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Run ``fn(*args, **kwargs)`` in the background with the caller's context.

    :raises BackgroundBusy: when `MAX_PENDING` jobs are already pending.
    """
    if not _slots.acquire(blocking=False):
        raise BackgroundBusy(f"{MAX_PENDING} background jobs are already pending")
    context = contextvars.copy_context()
    # Forked now: what the request binds after submitting does not reach the job, and
    # what the job binds does not leak back into the request.
    scope = sentry_sdk.get_isolation_scope().fork()
    headers = {
        "sentry-trace": sentry_sdk.get_traceparent() or "",
        "baggage": sentry_sdk.get_baggage() or "",
    }
    name = getattr(fn, "__qualname__", repr(fn))

    def job() -> T:
        with use_isolation_scope(scope):
            transaction = sentry_sdk.continue_trace(headers, op="task", name=name)
            with sentry_sdk.start_transaction(transaction):
                _log.debug("background.started", job=name)
                try:
                    result = fn(*args, **kwargs)
                except Exception:
                    _log.exception("background.failed", job=name)
                    raise
                _log.debug("background.finished", job=name)
                return result

    try:
        future = _pool().submit(context.run, job)
    except BaseException:
        _slots.release()
        raise
    future.add_done_callback(lambda _: _slots.release())
    return future


def shutdown(wait: bool = True) -> None:
    """Stop the pool, by default after the queued jobs finish (also run at exit)."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=wait)


atexit.register(shutdown)
