"""Dramatiq middleware: a job keeps the context of the request that enqueued it.

`JobContext` (install it with `install`, which places it where it sees the outcome of
Dramatiq's ``Retries``):

- on enqueue, writes `mina.jobs.carry.capture` into the message's options (once: a retry
  or a delayed message moving to its queue keeps the request's context, not the worker's)
  and logs ``job.enqueued``;
- in the worker, binds the carried context, so every line of the job names the request,
  user and meeting, and runs the job in its own Sentry scope and transaction, continuing
  the request's trace; logs ``job.started`` with ``queue_ms``;
- after it, logs ``job.succeeded``, ``job.retried`` (WARNING: a breadcrumb, no event) or
  ``job.failed`` (ERROR, with the exception: one Sentry event, when retries are spent),
  each with ``job_id``, ``task``, ``attempt`` and ``duration_ms``; redacts the traceback
  that ``Retries`` stores in the message (it is kept in the broker);
- when a worker process stops, flushes Sentry: Dramatiq ends its worker processes with
  ``os._exit``, which skips Sentry's exit flush.
"""

from __future__ import annotations

import time
from typing import Any, Final

import sentry_sdk
from dramatiq.broker import Broker
from dramatiq.message import Message
from dramatiq.middleware import Middleware, Retries
from sentry_sdk.integrations.logging import ignore_logger

from mina.jobs import carry
from mina.observability import context
from mina.observability.pipeline import PIPELINE, get_logger

__all__ = ["OPTION", "JobContext", "install"]

#: The message option holding the carried headers.
OPTION: Final = "mina"
_log = get_logger("mina.jobs")
_FLUSH_S: Final = 10.0
_DRAMATIQ_FAILURES: Final = "dramatiq.worker.WorkerThread"


def install(broker: Broker) -> JobContext:
    """Add `JobContext` to *broker*, before ``Retries`` (so its after-hooks run after it).

    Dramatiq's worker logs every failed attempt at ERROR; Sentry ignores that logger, so
    a job that fails for good is one event (``job.failed``), not one per attempt.
    """
    ignore_logger(_DRAMATIQ_FAILURES)
    for existing in broker.middleware:
        if isinstance(existing, JobContext):  # twice would log every line twice
            return existing
    middleware = JobContext()
    has_retries = any(isinstance(m, Retries) for m in broker.middleware)
    broker.add_middleware(middleware, before=Retries if has_retries else None)
    return middleware


class JobContext(Middleware):
    """Carry the enqueueing request's context into each job and log the job's life."""

    def before_enqueue(self, broker: Broker, message: Message[Any], delay: int | None) -> None:
        """Attach the request's carried context, the first time the message is enqueued.

        A retry is enqueued by ``Retries`` with the traceback of the failed attempt in its
        options: that text is stored in the broker, so it is redacted here, before.
        """
        _redact_traceback(message)
        if OPTION in message.options:
            return
        message.options[OPTION] = carry.capture()
        _log.info(
            "job.enqueued", job_id=message.message_id, task=message.actor_name, delay_ms=delay
        )

    def before_process_message(self, broker: Broker, message: Any) -> None:
        """Bind the carried context and start the job's scope and transaction."""
        carried = carry.decode(message.options.get(OPTION), PIPELINE.redactor)
        context.clear()  # a worker thread runs one job after another
        scope = sentry_sdk.isolation_scope()
        scope.__enter__()
        context.bind_request(**carried.context)
        transaction = sentry_sdk.continue_trace(
            carried.trace, op="queue.task", name=message.actor_name
        )
        span = sentry_sdk.start_transaction(transaction)
        span.__enter__()
        message._mina_job = (scope, span, time.monotonic())
        # A delayed message (a retry's backoff) waited from its eta, not from the send.
        ready_ms = message.options.get("eta", message.message_timestamp)
        _log.info(
            "job.started",
            job_id=message.message_id,
            task=message.actor_name,
            attempt=_attempt(message),
            queue_ms=max(0.0, round(time.time() * 1000 - ready_ms, 1)),
        )

    def after_process_message(
        self,
        broker: Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Log the outcome and end the job's scope (after ``Retries`` decided)."""
        state = getattr(message, "_mina_job", None)
        if state is None:
            return
        _, span, started = state
        keys = {
            "job_id": message.message_id,
            "task": message.actor_name,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }
        _redact_traceback(message)  # a dead letter keeps it
        try:
            if exception is None:
                span.set_status("ok")
                _log.info("job.succeeded", attempt=_attempt(message), **keys)
            elif message.failed:
                span.set_status("internal_error")
                # The attempt that just ran: Retries counted it in "retries" already.
                _log.error("job.failed", attempt=_attempt(message) - 1, exc_info=exception, **keys)
            else:
                span.set_status("internal_error")
                _log.warning(
                    "job.retried",
                    attempt=_attempt(message) - 1,
                    exception_type=type(exception).__qualname__,
                    **keys,
                )
        finally:
            del message._mina_job
            _end(state)

    def after_skip_message(self, broker: Broker, message: Any) -> None:
        """End a skipped message's scope (Dramatiq logs the skip; it neither failed nor ran)."""
        state = getattr(message, "_mina_job", None)
        if state is not None:
            del message._mina_job
            _end(state)

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        """Send what Sentry still holds before Dramatiq's ``os._exit``."""
        sentry_sdk.flush(timeout=_FLUSH_S)


def _end(state: tuple[Any, Any, float]) -> None:
    scope, span, _ = state
    span.__exit__(None, None, None)
    scope.__exit__(None, None, None)
    context.clear()


def _redact_traceback(message: Any) -> None:
    traceback = message.options.get("traceback")
    if isinstance(traceback, str):
        message.options["traceback"] = PIPELINE.redactor.redact_text(traceback)


def _attempt(message: Any) -> int:
    retries = message.options.get("retries", 0)
    return (retries if isinstance(retries, int) else 0) + 1
