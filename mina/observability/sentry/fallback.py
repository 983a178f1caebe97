"""When the outbox directory cannot be written: envelopes held in memory, said once.

An outbox on a read-only or full file system, without permission, or whose path is not a
directory is *degraded* (`Fallback.degrade`, from the probe at start-up or a failed
write): one ``sentry.outbox_degraded`` line, and envelopes go into a bounded memory queue
(`MEMORY_MAX_ENVELOPES`, `MEMORY_MAX_BYTES`; client reports, small and rare, always fit)
that the sender sends from. What does not fit is dropped and counted. The janitor calls
`Fallback.try_again` every second: once the directory takes a probe file and what memory
holds, one ``sentry.outbox_recovered`` line gives the counts of the degraded time. A
process that stops while degraded writes what memory holds into the outbox if it can, and
says how many envelopes it lost otherwise (`Fallback.lose_rest`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any, Final

from mina.observability.pipeline import get_logger
from mina.observability.sentry.link import LOGGER
from mina.observability.sentry.outbox import Kind, Outbox, OutboxFull

__all__ = ["MEMORY_MAX_BYTES", "MEMORY_MAX_ENVELOPES", "Fallback"]

#: Envelopes (and bytes) kept in memory while the outbox directory cannot be written.
MEMORY_MAX_ENVELOPES: Final = 1000
MEMORY_MAX_BYTES: Final = 16 * 1024 * 1024

_log = get_logger(LOGGER)

Held = tuple[Kind, bytes]


class Fallback:
    """The state of *outbox*'s directory and the memory queue used while it is degraded."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        #: Why the directory cannot be written (``outbox_read_only``, ...), or None.
        self.error: str | None = None
        self._since = 0.0
        self._counts: Counter[str] = Counter()
        self._dropped_total = 0
        self.after_fork()

    def after_fork(self) -> None:
        """Start with an empty queue (a forked child's parent sends what it holds)."""
        self._lock = threading.Lock()
        self._queue: deque[Held] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queue)

    def degrade(self, exc: OutboxFull) -> None:
        """Note that the directory cannot be written; one line when that starts."""
        with self._lock:
            first = self.error is None
            self.error = exc.reason
            if first:
                self._since = time.monotonic()
                self._counts = Counter()
        if first:
            _log.error(
                "sentry.outbox_degraded",
                outbox=str(self.outbox.directory),
                reason=exc.reason,
                error=str(exc)[:200],
                events="sent from memory until the outbox can be written again",
                memory_max_events=MEMORY_MAX_ENVELOPES,
            )

    def keep(self, kind: Kind, data: bytes) -> bool:
        """Hold *data* for the sender; False when it does not fit (dropped, counted here;
        the caller counts it for the client report)."""
        with self._lock:
            fits = kind == "report" or (
                len(self._queue) < MEMORY_MAX_ENVELOPES
                and self._bytes + len(data) <= MEMORY_MAX_BYTES
            )
            if fits:
                self._queue.append((kind, data))
                self._bytes += len(data)
                self._counts["kept_in_memory"] += 1
            else:
                self._counts["dropped"] += 1
                self._dropped_total += 1
            return fits

    def pop(self) -> Held | None:
        """The oldest envelope held, taken out of the queue (None when empty)."""
        with self._lock:
            if not self._queue:
                return None
            held = self._queue.popleft()
            self._bytes -= len(held[1])
            return held

    def settle(self, held: Held, *, sent: bool, last: bool = False) -> None:
        """After a try of *held*: counted if *sent*, else back in the queue, first or
        (*last*, a request that timed out) behind the others."""
        with self._lock:
            if sent:
                self._counts["sent_from_memory"] += 1
                return
            if last:
                self._queue.append(held)
            else:
                self._queue.appendleft(held)
            self._bytes += len(held[1])

    def spill(self) -> bool:
        """Write what memory holds into the outbox, oldest first; return whether all of
        it went (the rest stays in memory)."""
        while (held := self.pop()) is not None:
            try:
                self.outbox.put(held[1], held[0])
            except OutboxFull as exc:
                self.settle(held, sent=False)
                with self._lock:
                    self.error = self.error or exc.reason
                return False
            with self._lock:
                self._counts["written_to_outbox"] += 1
        return True

    def try_again(self) -> bool:
        """While degraded: if the directory takes envelopes again, write what memory holds
        into it and say so once; return whether it recovered."""
        try:
            self.outbox.probe()
        except OutboxFull as exc:
            with self._lock:
                self.error = exc.reason  # full may have become read-only
            return False
        if not self.spill():
            return False
        with self._lock:
            was, self.error = self.error, None
            counts, seconds = self._counts, time.monotonic() - self._since
        self.spill()  # what was kept while the first spill ran
        _log.info(
            "sentry.outbox_recovered",
            outbox=str(self.outbox.directory),
            was=was,
            degraded_seconds=round(seconds, 3),
            kept_in_memory=counts["kept_in_memory"],
            sent_from_memory=counts["sent_from_memory"],
            written_to_outbox=counts["written_to_outbox"],
            dropped=counts["dropped"],
        )
        return True

    def lose_rest(self) -> None:
        """At a stop: write what memory holds into the outbox if it can; count the rest
        in a ``sentry.outbox_memory_lost`` line."""
        self.spill()
        with self._lock:
            lost, self._queue, self._bytes = len(self._queue), deque(), 0
        if lost:
            _log.error(
                "sentry.outbox_memory_lost",
                envelopes=lost,
                outbox=str(self.outbox.directory),
                reason=self.error,
            )

    def health(self) -> dict[str, Any]:
        """The ``outbox`` part of ``/healthz``."""
        with self._lock:
            error, in_memory, dropped = self.error, len(self._queue), self._dropped_total
        out: dict[str, Any] = {"state": "ok" if error is None else "degraded"}
        if error is not None:
            out["reason"] = error
        out.update(path=str(self.outbox.directory), in_memory=in_memory, dropped=dropped)
        return out
