"""A Sentry transport that keeps every envelope on disk until Sentry has it.

`OutboxTransport.capture_envelope`, on the thread that captured the event, only
serializes the envelope and writes it into the `Outbox` (a local file: tmp, rename); it
never touches the network nor waits for the disk. Two daemon threads per process do the
rest (a process forked after Sentry started, as under gunicorn's ``preload_app``, starts
its own, with a connection pool of its own):

- the *sender* sends pending envelopes (errors first, oldest first), deletes each on a
  2xx, and on a refused/hung/reset connection, a 5xx, 401 or 403 puts it back and waits
  (exponential backoff with jitter, at most ``retry_max`` seconds); on 429 or
  ``X-Sentry-Rate-Limits`` it waits per category as Sentry asked, keeping the envelopes.
  Another 4xx (400, 413) means Sentry will never take the envelope: it is dropped and
  counted (``send_error``).
- the *janitor* fsyncs what was written (`Outbox.sync`), keeps the outbox within its
  bounds (dropping oldest non-errors first, each drop counted as ``cache_overflow``),
  returns envelopes claimed by dead processes, and writes the counted losses as a Sentry
  client report into the outbox.

The link to Sentry is logged once per change of state (``sentry.unreachable``,
``sentry.rate_limited``, ``sentry.recovered``) with the outbox depth, instead of a warning
per envelope; urllib3's own records from these threads are filtered out.

Without a DSN the transport only keeps envelopes (``mina outbox flush --dsn`` sends them).

Over 400 lines because the capture side and the two threads (sender, janitor) share the
outbox and the link's state (reachable, rate-limited, recovered).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Any, Final, Literal

import sentry_sdk
from sentry_sdk.consts import DEFAULT_OPTIONS
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.transport import Transport

from mina.observability.pipeline import get_logger
from mina.observability.sentry.outbox import Claim, Kind, Outbox, OutboxFull
from mina.observability.sentry.sdk_http import OutboxSender

__all__ = [
    "EXIT_FLUSH_SECONDS",
    "LOGGER",
    "THREAD_PREFIX",
    "OutboxTransport",
    "build_transport",
    "envelope_kind",
    "flush_on_exit",
    "sdk_options",
]

#: The logger of every line Mina's Sentry code writes (hooks, transport, storms); Sentry
#: ignores it, so no event is ever about sending events.
LOGGER: Final = "mina.sentry"
#: Name prefix of the transport's threads (urllib3's records from them are dropped).
THREAD_PREFIX: Final = "mina-sentry-outbox"

#: How long a stopping process spends sending before it leaves the rest on disk.
EXIT_FLUSH_SECONDS: Final = 2.0

_RETRY_BASE: Final = 0.5  # seconds before the first retry; doubles per failure
_IDLE_POLL: Final = 2.0  # seconds between looks for envelopes other processes left
_RECOVER_EVERY: Final = 5.0  # seconds between looks for abandoned claims
_REPORT_EVERY: Final = 30.0  # seconds between client reports, as the SDK does
_DROP_LOG_EVERY: Final = 1.0  # at most one outbox-dropped line a second

_log = get_logger(LOGGER)

State = Literal["ok", "unreachable", "rate_limited"]


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
    """

    def __init__(
        self, options: dict[str, Any], outbox: Outbox, *, timeout: float, retry_max: float
    ) -> None:
        super().__init__(options)
        self.outbox = outbox
        self._timeout = timeout
        self._retry_max = retry_max
        self._lost: Counter[tuple[str, str]] = Counter()
        self._last_report = time.monotonic()
        self._dropped: Counter[Kind] = Counter()
        self._last_drop_log = 0.0
        self._start()
        _transports.add(self)

    def _start(self) -> None:
        # The sender's connection pool, the threads and what they share; made again in a
        # forked child (`_after_fork`), where the parent's threads do not run and its
        # pooled connections must not be used.
        options = self.options
        assert options is not None  # set by Transport.__init__ from the argument
        self._sender = OutboxSender(options, self._timeout) if options.get("dsn") else None
        self._lost_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._tidy = threading.Event()
        self._cond = threading.Condition()
        self._pass = 0  # sender passes started
        self._passed = 0  # sender passes finished
        self._retry_at = 0.0
        self._failures = 0
        self._state: State = "ok"
        self._limited: frozenset[str] = frozenset()  # categories announced as limited
        self._down_since = 0.0
        self._sent_total = 0
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
        for thread in self._threads:
            thread.start()

    def _after_fork(self) -> None:
        # In a forked child, before any other thread exists (see `_after_fork` below).
        self.outbox.after_fork()
        self._lost = Counter()  # the parent reports its own
        self._dropped = Counter()
        self._start()

    # Called by the SDK, on the capturing thread

    def capture_envelope(self, envelope: Envelope) -> None:
        """Write *envelope* into the outbox (no network on this thread)."""
        try:
            self.outbox.put(envelope.serialize(), envelope_kind(envelope))
        except OutboxFull as exc:
            for item in envelope.items:
                self.record_lost_event("cache_overflow", item=item)
            _log.error("sentry.outbox_write_failed", error=str(exc)[:200])
            return
        self._wake.set()
        self._tidy.set()

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
        if self._sender is None or timeout <= 0:
            return
        with self._cond:
            target = self._pass + 1
            self._retry_at = 0.0
        self._wake.set()
        with self._cond:
            self._cond.wait_for(lambda: self._passed >= target or self._stop.is_set(), timeout)

    def kill(self) -> None:
        """Stop both threads; what is not sent stays in the outbox for the next process."""
        self._stop.set()
        self._wake.set()
        self._tidy.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=0.5)

    @property
    def state(self) -> State:
        """The link to Sentry as last seen: ``ok``, ``unreachable`` or ``rate_limited``."""
        return self._state

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
        sender = self._sender
        assert sender is not None
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            return wait
        if sender.blocked_all():
            return min(sender.limited_for(), _IDLE_POLL)
        for entry in self.outbox.pending():
            if self._stop.is_set():
                return 0.0
            claim = self.outbox.claim(entry)
            if claim is None:  # another process took it
                continue
            try:
                data = self.outbox.read(claim)
            except FileNotFoundError:
                continue
            if sender.limited_for() > 0 and sender.blocked(_categories(data)):
                self.outbox.release(claim)
                continue
            if not self._send(sender, claim, data):
                return max(self._retry_at - time.monotonic(), 0.0)
        limited = sender.limited_for()
        return min(limited, _IDLE_POLL) if limited > 0 else _IDLE_POLL

    def _send(self, sender: OutboxSender, claim: Claim, data: bytes) -> bool:
        """Send one claimed envelope; return whether to go on with the next one."""
        try:
            status, retry_after = sender.post(data)
        except Exception as exc:  # refused, reset, timed out, DNS: Sentry is unreachable
            self.outbox.release(claim)
            self._unreachable(type(exc).__name__, None)
            return False
        self._note_limits(sender)
        if 200 <= status < 300:
            self.outbox.done(claim)
            self._delivered()
            return True
        if status == 429:
            self.outbox.release(claim)
            self._rate_limited()
            return True  # other categories may still go
        if status >= 500 or status in (401, 403, 408):
            # Sentry (or a proxy) is down, or the key is wrong: keep the envelope.
            self.outbox.release(claim)
            self._unreachable(f"HTTP {status}", retry_after)
            return False
        # Any other answer means Sentry will never take this envelope.
        self._count_lost("send_error", data)
        self.outbox.done(claim)
        _log.error("sentry.envelope_rejected", status=status, outbox_id=claim.id)
        return True

    def _count_lost(self, reason: str, data: bytes) -> None:
        try:
            items = Envelope.deserialize(data).items
        except Exception:  # cut short by a power loss before it was synced
            self.record_lost_event(reason, "error")
            return
        for item in items:
            self.record_lost_event(reason, item=item)

    def _depth(self) -> dict[str, int]:
        count, size = self.outbox.depth()
        return {"outbox_depth": count, "outbox_bytes": size}

    def _unreachable(self, error: str, retry_after: str | None) -> None:
        self._failures += 1
        delay = min(self._retry_max, _RETRY_BASE * 2 ** min(self._failures - 1, 30))
        delay *= random.uniform(0.5, 1.0)  # jitter: workers sharing a host spread out
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), self._retry_max))
        self._retry_at = time.monotonic() + delay
        if self._state != "unreachable":
            if self._state == "ok":
                self._down_since = time.monotonic()
            self._state = "unreachable"
            _log.warning(
                "sentry.unreachable", error=error, retry_in=round(delay, 3), **self._depth()
            )

    def _note_limits(self, sender: OutboxSender) -> None:
        # One line when Sentry limits a category it did not limit before (429 or a
        # X-Sentry-Rate-Limits header on any answer); envelopes of it wait meanwhile.
        limited = frozenset(sender.limited_categories())
        new, self._limited = limited - self._limited, limited
        if new:
            _log.warning(
                "sentry.rate_limited",
                categories=sorted(limited),
                retry_in=round(sender.limited_for(), 3),
                **self._depth(),
            )

    def _rate_limited(self) -> None:
        # A 429: the link is down until the limit ends (the line came from _note_limits).
        if self._state == "ok":
            self._down_since = time.monotonic()
        self._state = "rate_limited"

    def _delivered(self) -> None:
        self._sent_total += 1
        failures, self._failures = self._failures, 0
        self._retry_at = 0.0
        if self._state != "ok":
            was, self._state = self._state, "ok"
            _log.info(
                "sentry.recovered",
                was=was,
                failed_attempts=failures,
                down_seconds=round(time.monotonic() - self._down_since, 3),
                **self._depth(),
            )

    # The janitor thread

    def _run_janitor(self) -> None:
        last_recover = 0.0
        while not self._stop.is_set():
            self._tidy.clear()
            try:
                now = time.monotonic()
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
        self.outbox.sync()
        self._log_drops(force=True)

    def _enforce_bounds(self) -> None:
        for claim in self.outbox.over_bounds():
            with contextlib.suppress(OSError):  # gone: nothing to count
                self._count_lost("cache_overflow", self.outbox.read(claim))
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
        try:
            self.outbox.put(envelope.serialize(), "report")
        except OutboxFull as exc:
            _log.error("sentry.outbox_write_failed", error=str(exc)[:200], lost=report)
            return
        self._wake.set()


def build_transport(
    options: dict[str, Any],
    directory: Path,
    *,
    max_envelopes: int,
    max_bytes: int,
    timeout: float,
    retry_max: float,
) -> OutboxTransport:
    """An `OutboxTransport` for the ``sentry_sdk.init`` keyword arguments *options*."""
    return OutboxTransport(
        sdk_options(**options),
        Outbox(directory, max_envelopes, max_bytes),
        timeout=timeout,
        retry_max=retry_max,
    )


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
