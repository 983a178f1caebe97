"""Background work that keeps the context of the request that started it.

`submit` runs a function in a thread pool with a copy of the caller's log context and
Sentry scope: the job's lines carry the request's ``request_id``, user and meeting, and
the job is its own Sentry transaction, continuing the request's trace. A job that raises
is logged once (``background.failed``, an ERROR: the Sentry event) and the exception is
kept on the returned future.
"""

from __future__ import annotations

import atexit
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

import sentry_sdk
import structlog

__all__ = ["shutdown", "submit"]

P = ParamSpec("P")
T = TypeVar("T")

_MAX_WORKERS: Final = 4
_log = structlog.get_logger("mina.background")
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    # Created on first use, per process: a pool made before gunicorn forks would have no
    # threads in the workers.
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="mina-background")
        return _executor


def submit(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Run ``fn(*args, **kwargs)`` in the background with the caller's context."""
    context = contextvars.copy_context()
    headers = {
        "sentry-trace": sentry_sdk.get_traceparent() or "",
        "baggage": sentry_sdk.get_baggage() or "",
    }
    name = getattr(fn, "__qualname__", repr(fn))

    def job() -> T:
        # A forked isolation scope: the job sees the request's user and tags, and what
        # it binds does not leak back into the request.
        with sentry_sdk.isolation_scope():
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

    return _pool().submit(context.run, job)


def shutdown(wait: bool = True) -> None:
    """Stop the pool, by default after the queued jobs finish (also run at exit)."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=wait)


atexit.register(shutdown)
