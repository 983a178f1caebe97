"""A Sentry transport that keeps every envelope on disk until Sentry has it.

`OutboxTransport.capture_envelope`, on the thread that captured the event, only
serializes the envelope and writes it into the `Outbox` (a local file: tmp, rename); it
never touches the network nor waits for the disk. Daemon threads per process do the rest
(a process forked after Sentry started, as under gunicorn's ``preload_app``, starts its
own, with a connection pool of its own):

- the *sender* claims pending envelopes (errors first, oldest first) and hands them to
  `SENDERS` *poster* threads, one request in flight unless Sentry answers slowly
  (`Link.room`); each request's answer is
  decided by the `mina.observability.sentry.link.Link` (delete, keep and back off, wait
  for a rate limit, a rejected key, a timed-out envelope sent last). A pass ends when its
  requests have, which is what `flush` waits for.
- the *janitor* fsyncs what was written (`Outbox.sync`), keeps the outbox within its
  bounds (dropping oldest non-errors first, each drop counted as ``cache_overflow``),
  returns envelopes claimed by dead processes, and writes the counted losses as a Sentry
  client report into the outbox.

An outbox that cannot be written is *degraded* (`mina.observability.sentry.fallback`):
envelopes go through memory meanwhile. `OutboxTransport.health` is what ``/healthz``
shows. urllib3's own records from these threads are filtered out: the link's state is
logged once per change instead.

Without a DSN the transport only keeps envelopes (``mina outbox flush --dsn`` sends them).

Over 400 lines because the capture side, the sender with its posters and the janitor
share the outbox, the memory fallback and the stop and flush signals.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import sentry_sdk
from sentry_sdk.consts import DEFAULT_OPTIONS
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.transport import Transport

from mina.observability.pipeline import get_logger
from mina.observability.sentry.fallback import MEMORY_MAX_BYTES, MEMORY_MAX_ENVELOPES, Fallback
from mina.observability.sentry.link import (
    LOGGER,
    REJECTED_RETRY_SECONDS,
    SENDERS,
    Attempt,
    Link,
    State,
)
from mina.observability.sentry.outbox import Claim, Kind, Outbox, OutboxFull
from mina.observability.sentry.sdk_http import OutboxSender

__all__ = [
    "EXIT_FLUSH_SECONDS",
    "LOGGER",
    "MEMORY_MAX_BYTES",
    "MEMORY_MAX_ENVELOPES",
    "REJECTED_RETRY_SECONDS",
    "SENDERS",
    "THREAD_PREFIX",
    "OutboxTransport",
    "build_transport",
    "envelope_kind",
    "flush_on_exit",
    "link_health",
    "sdk_options",
]

#: Name prefix of the transport's threads (urllib3's records from them are dropped).
THREAD_PREFIX: Final = "mina-sentry-outbox"

#: How long a stopping process spends sending before it leaves the rest on disk.
EXIT_FLUSH_SECONDS: Final = 2.0

_IDLE_POLL: Final = 2.0  # seconds between looks for envelopes other processes left
_RECOVER_EVERY: Final = 5.0  # seconds between looks for abandoned claims
_REPORT_EVERY: Final = 30.0  # seconds between client reports, as the SDK does
_DROP_LOG_EVERY: Final = 1.0  # at most one outbox-dropped line a second
_PROBE_EVERY: Final = 1.0  # seconds between tries of a degraded outbox directory
_log = get_logger(LOGGER)


def sdk_options(**options: Any) -> dict[str, Any]:
    """The SDK's default options updated with *options*: what a transport built outside
    ``sentry_sdk.init`` (a transport instance, the CLI's sender) is given."""
    return {**DEFAULT_OPTIONS, **options}


def envelope_kind(envelope: Envelope) -> Kind:
    """``report`` for a lone client report, ``error`` for an envelope with an error event,
    else ``other`` (see `Outbox` for what the kind decides)."""
    types = [item.type for item in envelope.items]
    if types == ["client_report"]:
        return "report"
    return "error" if "event" in types else "other"


def _categories(data: bytes) -> list[str]:
    envelope = Envelope.deserialize(data)
    return [item.data_category for item in envelope.items]


def _intact(data: bytes) -> bool:
    """Whether *data* is a whole envelope: it parses, holds at least one item, and each
    item is as long as its header says (a file cut short may still parse)."""
    try:
        items = Envelope.deserialize(data).items
    except Exception:
        return False
    return bool(items) and all(
        not isinstance(item.headers.get("length"), int)
        or item.headers["length"] == len(item.get_bytes())
        for item in items
    )


class _QuietUrllib3:
    """Drops urllib3's records made on the outbox threads: the link's state is logged
    once per change instead of a warning per envelope."""

    __slots__ = ()

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName or not record.threadName.startswith(THREAD_PREFIX)


_QUIET: Final = _QuietUrllib3()
#: A logger's filters only see records made on it, not those its children propagate.
_URLLIB3_LOGGERS: Final = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")


class OutboxTransport(Transport):
    """Sentry transport writing to an `Outbox`, sending from background threads.

    :param options: the SDK options (`sdk_options`); without ``dsn`` nothing is sent.
    :param outbox: where envelopes wait.
    :param timeout: socket timeout of one request, in seconds.
    :param retry_max: longest wait between retries, in seconds.
    :param rejected_retry: wait between tries while Sentry answers 401/403, in seconds.
    """

    def __init__(
        self,
        options: dict[str, Any],
        outbox: Outbox,
        *,
        timeout: float,
        retry_max: float,
        rejected_retry: float = REJECTED_RETRY_SECONDS,
    ) -> None:
        super().__init__(options)
        self.outbox = outbox
        self._timeout = timeout
        self._retry_max = retry_max
        self._rejected_retry = rejected_retry
        self._lost: Counter[tuple[str, str]] = Counter()
        self._last_report = time.monotonic()
        self._dropped: Counter[Kind] = Counter()
        self._last_drop_log = 0.0
        #: The directory's state, and the memory queue while it cannot be written.
        self.fallback = Fallback(outbox)
        try:
            outbox.probe()
        except OutboxFull as exc:  # said at start-up, not at the first event
            self.fallback.degrade(exc)
        self._start()
        _transports.add(self)

    def _start(self) -> None:
        # The sender's connection pool, the threads and what they share; made again in a
        # forked child (`_after_fork`), where the parent's threads do not run and its
        # pooled connections must not be used.
        options = self.options
        assert options is not None  # set by Transport.__init__ from the argument
        self._sender = OutboxSender(options, self._timeout) if options.get("dsn") else None
        #: The link's state (None without a DSN: nothing is sent).
        self.link = (
            Link(
                options["dsn"],
                timeout=self._timeout,
                retry_max=self._retry_max,
                rejected_retry=self._rejected_retry,
                depth=self._depth,
            )
            if self._sender is not None
            else None
        )
        self._lost_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._tidy = threading.Event()
        self._cond = threading.Condition()
        self._pass = 0  # sender passes started
        self._passed = 0  # sender passes finished
        # Claimed envelopes handed to the poster threads, and how many are in flight.
        self._posts: queue.SimpleQueue[tuple[Claim, bytes] | None] = queue.SimpleQueue()
        self._flight = threading.Condition()
        self._in_flight = 0
        self._halt = False  # a poster met a failure: dispatch no more this pass
        for name in _URLLIB3_LOGGERS:
            quiet = logging.getLogger(name)
            if _QUIET not in quiet.filters:
                quiet.addFilter(_QUIET)
        self._threads = [
            threading.Thread(target=self._run_janitor, name=f"{THREAD_PREFIX}-janitor", daemon=True)
        ]
        if self._sender is not None:
            self._threads.append(
                threading.Thread(
                    target=self._run_sender, name=f"{THREAD_PREFIX}-sender", daemon=True
                )
            )
            self._threads += [
                threading.Thread(
                    target=self._run_poster, name=f"{THREAD_PREFIX}-post-{n}", daemon=True
                )
                for n in range(SENDERS)
            ]
        for thread in self._threads:
            thread.start()

    def _after_fork(self) -> None:
        # In a forked child, before any other thread exists (see `_after_fork` below).
        self.outbox.after_fork()
        self._lost = Counter()  # the parent reports its own
        self._dropped = Counter()
        self.fallback.after_fork()  # the parent sends what it kept in memory
        self._start()

    # Called by the SDK, on the capturing thread

    def capture_envelope(self, envelope: Envelope) -> None:
        """Write *envelope* into the outbox (no network on this thread); while the outbox
        cannot be written, keep it in memory for the sender."""
        self._store(envelope.serialize(), envelope_kind(envelope), envelope.items)

    def _store(self, data: bytes, kind: Kind, items: Iterable[Item]) -> None:
        if self.fallback.error is None:
            try:
                self.outbox.put(data, kind)
            except OutboxFull as exc:
                self.fallback.degrade(exc)
            else:
                self._wake.set()
                self._tidy.set()
                return
        if not self.fallback.keep(kind, data):
            for item in items:
                self.record_lost_event("queue_overflow", item=item)
        self._wake.set()

    def health(self) -> dict[str, Any]:
        """The outbox's and the link's state, as ``/healthz`` shows them."""
        link = self.link
        sentry: dict[str, Any] = {"state": link.state if link is not None else "off"}
        if link is not None and link.state != "ok":
            sentry["retry_in"] = round(link.wait(), 3)
        return {"outbox": self.fallback.health(), "sentry": sentry}

    def record_lost_event(
        self,
        reason: str,
        data_category: Any = None,
        item: Item | None = None,
        *,
        quantity: int = 1,
    ) -> None:
        """Count a lost item for the next client report (the SDK's rules for quantities)."""
        if not self.options or not self.options.get("send_client_reports", True):
            return
        if item is not None:
            data_category = item.data_category
            quantity = 1
            if data_category == "transaction":
                event = item.get_transaction_event() or {}
                self.record_lost_event(reason, "span", quantity=len(event.get("spans") or []) + 1)
            elif data_category in ("span", "log_item", "trace_metric"):
                count = item.headers.get("item_count")
                quantity = count if isinstance(count, int) and count > 0 else 1
            elif data_category == "attachment":
                quantity = len(item.get_bytes()) or 1
        elif data_category is None:
            raise TypeError("data category not provided")
        if data_category == "internal":  # a lost client report cannot be reported
            return
        with self._lost_lock:
            self._lost[(str(data_category), reason)] += quantity

    def flush(self, timeout: float, callback: Any = None) -> None:
        """Send what can be sent within *timeout* seconds (one attempt even while backing
        off); the rest stays in the outbox."""
        self._log_drops(force=True)
        self._write_client_report(force=True)
        if self.link is None or timeout <= 0:
            return
        with self._cond:
            target = self._pass + 1
            self.link.try_now()
        self._wake.set()
        with self._cond:
            self._cond.wait_for(lambda: self._passed >= target or self._stop.is_set(), timeout)

    def kill(self) -> None:
        """Stop the threads; what is not sent stays in the outbox for the next process
        (envelopes held in memory are written there if it takes them now, else counted in
        a ``sentry.outbox_memory_lost`` line)."""
        self._stop.set()
        self._wake.set()
        self._tidy.set()
        with self._cond:
            self._cond.notify_all()
        with self._flight:
            self._flight.notify_all()
        for _ in range(SENDERS):
            self._posts.put(None)
        # One deadline for all: posters blocked on a hung Sentry would otherwise add half
        # a second each to a worker's exit (they are daemon threads, left to the exit).
        deadline = time.monotonic() + 0.5
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        self.fallback.lose_rest()

    @property
    def state(self) -> State:
        """The link to Sentry as last seen: ``ok``, ``unreachable``, ``rate_limited`` or
        ``rejected``."""
        return self.link.state if self.link is not None else "ok"

    # The sender thread

    def _run_sender(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            with self._cond:
                self._pass += 1
            try:
                delay = self._send_pass()
            except Exception as exc:  # never let the thread die; try again later
                _log.error("sentry.outbox_failed", error=type(exc).__name__, detail=str(exc)[:200])
                delay = _IDLE_POLL
            with self._cond:
                self._passed += 1
                self._cond.notify_all()
            self._wake.wait(delay)

    def _send_pass(self) -> float:
        """Send what may be sent now; return how long to wait before the next pass."""
        sender, link = self._sender, self.link
        assert sender is not None and link is not None
        wait = link.wait()
        if wait > 0:
            return wait
        if sender.blocked_all():
            return min(sender.limited_for(), _IDLE_POLL)
        if not self._send_memory(sender):
            return link.wait()
        try:
            entries = self.outbox.pending()
        except OSError:  # unreadable: the capturing side finds it out and says so
            entries = []
        # Those whose request timed out go last: the others are not held up by them.
        entries = link.order(entries, lambda entry: entry.id)
        with self._flight:
            self._halt = False
        try:
            for entry in entries:
                if not self._slot():
                    break
                try:
                    claim = self.outbox.claim(entry)
                except OutboxFull as exc:  # read-only now: memory carries new envelopes
                    self.fallback.degrade(exc)
                    break
                if claim is None:  # another process took it
                    continue
                try:
                    data = self.outbox.read(claim)
                except FileNotFoundError:
                    continue
                if sender.limited_for() > 0 and sender.blocked(_categories(data)):
                    self.outbox.release(claim)
                    continue
                with self._flight:
                    self._in_flight += 1
                self._posts.put((claim, data))
        finally:
            with self._flight:  # a pass ends when its requests have (flush waits for it)
                self._flight.wait_for(lambda: not self._in_flight or self._stop.is_set())
                halted = self._halt
        if self._stop.is_set():
            return 0.0
        if halted:
            return link.wait()
        limited = sender.limited_for()
        return min(limited, _IDLE_POLL) if limited > 0 else _IDLE_POLL

    def _slot(self) -> bool:
        """Wait for room for one more request; False when the pass should end."""
        assert self.link is not None
        with self._flight:
            while not (self._halt or self._stop.is_set()):
                if self._in_flight < self.link.room():
                    return True
                self._flight.wait()
            return False

    def _run_poster(self) -> None:
        while (job := self._posts.get()) is not None:
            claim, data = job
            go_on = False
            try:
                go_on = self._send(claim, data)
            except Exception as exc:  # never let the thread die; the claim is recovered
                _log.error("sentry.outbox_failed", error=type(exc).__name__, detail=str(exc)[:200])
            finally:
                with self._flight:
                    self._in_flight -= 1
                    self._halt = self._halt or not go_on
                    self._flight.notify_all()

    def _send_memory(self, sender: OutboxSender) -> bool:
        """Send the envelopes kept in memory; return whether to go on with the outbox."""
        for _ in range(len(self.fallback)):  # each at most once a pass
            if self._stop.is_set() or (held := self.fallback.pop()) is None:
                return not self._stop.is_set()
            attempt = Attempt(keep=True, go_on=False)  # what an exception leaves
            try:
                if sender.limited_for() > 0 and sender.blocked(_categories(held[1])):
                    attempt = Attempt(keep=True, go_on=True, timed_out=True)  # goes last
                else:
                    attempt = self._attempt(held[1], None)
            finally:
                self.fallback.settle(held, sent=not attempt.keep, last=attempt.timed_out)
            if not attempt.go_on:
                return False
        return True

    def _send(self, claim: Claim, data: bytes) -> bool:
        """Send one claimed envelope; return whether to go on with the next one."""
        if not _intact(data):
            # Cut short by a power loss before it was synced. Sent, it might even be
            # accepted (a header alone is a valid empty envelope) and the loss go uncounted.
            self._count_lost("send_error", data, claim.kind)
            _log.error("sentry.envelope_damaged", outbox_id=claim.id, size=len(data))
            self.outbox.done(claim)
            return True
        attempt = self._attempt(data, claim.id)
        if attempt.keep:
            self.outbox.release(claim)
        else:
            self.outbox.done(claim)
        return attempt.go_on

    def _attempt(self, data: bytes, id_: str | None) -> Attempt:
        """One request through the link; an envelope Sentry will never take is counted."""
        assert self._sender is not None and self.link is not None
        attempt = self.link.attempt(self._sender, data, id_)
        if attempt.refused is not None:
            self._count_lost("send_error", data)
            _log.error("sentry.envelope_rejected", status=attempt.refused, outbox_id=id_)
        return attempt

    def _count_lost(self, reason: str, data: bytes, kind: Kind = "error") -> None:
        """Count what *data* held; an envelope too damaged to read counts as one item of
        its outbox *kind* (an error unless its id says otherwise)."""
        if not _intact(data):
            if kind != "report":  # a lost client report cannot be reported
                self.record_lost_event(reason, "error" if kind == "error" else "default")
            return
        for item in Envelope.deserialize(data).items:
            self.record_lost_event(reason, item=item)

    def _depth(self) -> dict[str, int]:
        try:
            count, size = self.outbox.depth()
        except OSError:  # an unreadable directory (degraded): nothing countable there
            count = size = 0
        return {"outbox_depth": count, "outbox_bytes": size}

    # The janitor thread

    def _run_janitor(self) -> None:
        last_recover = last_probe = 0.0
        while not self._stop.is_set():
            self._tidy.clear()
            try:
                now = time.monotonic()
                if self.fallback.error is not None:
                    # Nothing to tidy on a directory that cannot be changed: try it again.
                    if now - last_probe >= _PROBE_EVERY:
                        last_probe = now
                        if self.fallback.try_again():
                            self._wake.set()
                else:
                    self.outbox.sync()
                    if now - last_recover >= _RECOVER_EVERY:
                        last_recover = now
                        if self.outbox.recover():
                            self._wake.set()
                    self._enforce_bounds()
                self._write_client_report(force=False)
            except Exception as exc:  # never let the thread die
                _log.error("sentry.outbox_failed", error=type(exc).__name__, detail=str(exc)[:200])
            self._tidy.wait(1.0)
            self._stop.wait(0.05)  # a burst of writes wakes this once, not per write
        if self.fallback.error is None:
            self.outbox.sync()
        self._log_drops(force=True)

    def _enforce_bounds(self) -> None:
        for claim in self.outbox.over_bounds():
            with contextlib.suppress(OSError):  # gone: nothing to count
                self._count_lost("cache_overflow", self.outbox.read(claim), claim.kind)
            with self._lost_lock:
                self._dropped[claim.kind] += 1
            self.outbox.done(claim)
        self._log_drops(force=False)

    def _log_drops(self, force: bool) -> None:
        now = time.monotonic()
        with self._lost_lock:
            if not self._dropped or (not force and now - self._last_drop_log < _DROP_LOG_EVERY):
                return
            self._last_drop_log = now
            dropped, self._dropped = self._dropped, Counter()
        _log.warning(
            "sentry.outbox_dropped",
            errors=dropped["error"],
            others=dropped["other"],
            reports=dropped["report"],
            max_events=self.outbox.max_envelopes,
            max_bytes=self.outbox.max_bytes,
            **self._depth(),
        )

    def _write_client_report(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < _REPORT_EVERY:
            return
        with self._lost_lock:
            lost, self._lost = self._lost, Counter()
            self._last_report = now
        if not lost:
            return
        report = {
            "timestamp": time.time(),
            "discarded_events": [
                {"reason": reason, "category": category, "quantity": quantity}
                for (category, reason), quantity in sorted(lost.items())
            ],
        }
        envelope = Envelope(items=[Item(PayloadRef(json=report), type="client_report")])
        self._store(envelope.serialize(), "report", envelope.items)


def build_transport(
    options: dict[str, Any],
    directory: Path,
    *,
    max_envelopes: int,
    max_bytes: int,
    timeout: float,
    retry_max: float,
    rejected_retry: float = REJECTED_RETRY_SECONDS,
) -> OutboxTransport:
    """An `OutboxTransport` for the ``sentry_sdk.init`` keyword arguments *options*."""
    return OutboxTransport(
        sdk_options(**options),
        Outbox(directory, max_envelopes, max_bytes),
        timeout=timeout,
        retry_max=retry_max,
        rejected_retry=rejected_retry,
    )


def link_health() -> dict[str, Any]:
    """What ``/healthz`` says about Sentry: ``{"outbox": {...}, "sentry": {...}}``.

    ``outbox.state`` is ``ok``, ``degraded`` (with ``reason``) or ``off`` (no outbox);
    ``sentry.state`` is ``ok``, ``unreachable``, ``rate_limited``, ``rejected``, ``off``
    (no DSN, or Sentry not started) or ``unmonitored`` (the SDK's own transport).
    """
    client = sentry_sdk.get_client()
    transport = client.transport if client.is_active() else None
    if isinstance(transport, OutboxTransport):
        return transport.health()
    sentry = "off" if transport is None else "unmonitored"
    return {"outbox": {"state": "off"}, "sentry": {"state": sentry}}


#: Every live transport, for `_after_fork`.
_transports: weakref.WeakSet[OutboxTransport] = weakref.WeakSet()


def _after_fork() -> None:
    # A process that started Sentry and then forked (gunicorn's preload_app): each child
    # sends with threads and connections of its own, and can flush.
    for transport in list(_transports):
        transport._after_fork()


os.register_at_fork(after_in_child=_after_fork)


def flush_on_exit() -> None:
    """Send what can be sent within `EXIT_FLUSH_SECONDS`, then stop the transport's
    threads; the rest stays in the outbox for the next process (gunicorn's
    ``worker_exit``)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=EXIT_FLUSH_SECONDS)
