"""Storm control for log-originated Sentry events.

When one line of code logs the same error thousands of times a minute, Sentry needs a few
of them and the number, not every copy. `StormGuard` lets through the first ``budget``
events of each *kind* per ``window`` seconds and counts the rest. The kind is what makes
two events the same issue for an operator: event name, logger, exception type and where
the exception was raised (or, without one, where it was logged).

Nothing suppressed goes uncounted:

- the next event of that kind that is sent carries the count in the tag
  ``mina.suppressed_count`` (and ``extra``),
- one ``sentry.storm_suppressed`` line per kind and window reaches stdout when the window
  ends (or when that next event is sent, whichever comes first), and at shutdown for the
  windows still open (`StormGuard.report_pending`, called when the client closes),
- the SDK counts each suppressed event as lost (``before_send``) in its client report.

``MINA_SENTRY_STORM_BUDGET=0`` turns the guard off.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

from mina.observability.pipeline import get_logger
from mina.observability.sentry.transport import LOGGER

__all__ = ["SUPPRESSED_TAG", "StormGuard"]

#: Tag (and ``extra`` key) carrying how many events of this kind were not sent before it.
SUPPRESSED_TAG: Final = "mina.suppressed_count"

_KINDS_MAX: Final = 4096  # kinds remembered; a longer list is pruned of finished windows

_log = get_logger(LOGGER)

_Kind = tuple[str, str, str, str]


class _Window:
    __slots__ = ("logged", "sent", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.sent = 1
        self.suppressed = 0  # not yet carried by a sent event
        self.logged = 0  # of those, already reported in a line


class StormGuard:
    """Lets *budget* events of each kind through per *window* seconds; counts the rest.

    :param budget: events of one kind sent per window; 0 lets everything through.
    :param window: the window's length in seconds.
    :param clock: monotonic seconds (tests pass a fake one).
    """

    __slots__ = ("__weakref__", "_clock", "_kinds", "_lock", "_timer", "budget", "window")

    def __init__(
        self, budget: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = budget
        self.window = window
        self._clock = clock
        self._kinds: dict[_Kind, _Window] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        _guards.add(self)

    def admit(self, event: dict[str, Any], hint: Any) -> bool:
        """Whether to send *event*; when sent after suppressed ones, tag it with their count."""
        if self.budget <= 0:
            return True
        kind = _kind(event, hint)
        if kind is None:  # not from a log record: captured on purpose, always sent
            return True
        now = self._clock()
        carried = unlogged = 0
        with self._lock:
            window = self._kinds.get(kind)
            if window is not None and now - window.start < self.window:
                if window.sent >= self.budget:
                    window.suppressed += 1
                    self._schedule(window.start + self.window - now)
                    return False
                window.sent += 1
            else:
                if window is not None:
                    carried = window.suppressed
                    unlogged = window.suppressed - window.logged
                if len(self._kinds) >= _KINDS_MAX:
                    self._prune(now)
                self._kinds[kind] = _Window(now)
        if carried:
            if unlogged:
                self._report(kind, unlogged)
            event.setdefault("tags", {})[SUPPRESSED_TAG] = str(carried)
            event.setdefault("extra", {})[SUPPRESSED_TAG] = carried
        return True

    def report_finished(self) -> None:
        """Write one ``sentry.storm_suppressed`` line for each kind whose window ended with
        suppressed events not yet reported (the timer calls this; so can shutdown)."""
        now = self._clock()
        due = []
        with self._lock:
            self._timer = None
            pending_end = None
            for kind, window in self._kinds.items():
                unlogged = window.suppressed - window.logged
                if unlogged <= 0:
                    continue
                end = window.start + self.window
                if end <= now:
                    window.logged = window.suppressed
                    due.append((kind, unlogged))
                elif pending_end is None or end < pending_end:
                    pending_end = end
            if pending_end is not None:
                self._schedule(pending_end - now)
        for kind, count in due:
            self._report(kind, count)

    def report_pending(self) -> None:
        """Write one ``sentry.storm_suppressed`` line for each kind with suppressed events
        not yet reported, whether or not its window has ended: what a stopping process
        calls, so no count is left only in memory."""
        due = []
        with self._lock:
            for kind, window in self._kinds.items():
                unlogged = window.suppressed - window.logged
                if unlogged > 0:
                    window.logged = window.suppressed
                    due.append((kind, unlogged))
        for kind, count in due:
            self._report(kind, count)

    def _after_fork(self) -> None:
        # In a forked child the parent's timer thread is not there: without this, no
        # window of the child would ever be reported at its end.
        self._lock = threading.Lock()
        self._timer = None

    def _schedule(self, delay: float) -> None:
        # Called with the lock held. One timer for every kind: the earliest window end.
        if self._timer is None:
            self._timer = threading.Timer(max(delay, 0.0) + 0.01, self.report_finished)
            self._timer.name = "mina-sentry-storm"
            self._timer.daemon = True
            self._timer.start()

    def _prune(self, now: float) -> None:
        for kind in [
            kind
            for kind, window in self._kinds.items()
            if now - window.start >= self.window and window.suppressed == window.logged
        ]:
            del self._kinds[kind]

    def _report(self, kind: _Kind, count: int) -> None:
        name, logger, exc_type, location = kind
        _log.warning(
            "sentry.storm_suppressed",
            suppressed=count,
            budget=self.budget,
            window_seconds=self.window,
            storm_event=name,
            storm_logger=logger,
            exception_type=exc_type or None,
            location=location,
        )


def _kind(event: dict[str, Any], hint: Any) -> _Kind | None:
    record = hint.get("log_record") if isinstance(hint, dict) else None
    if record is None:
        return None
    exc_info = record.exc_info
    exc_type = ""
    location = f"{record.pathname}:{record.lineno}"
    if exc_info and exc_info[0] is not None:
        exc_type = exc_info[0].__qualname__
        tb = exc_info[2]
        if tb is not None:
            while tb.tb_next is not None:
                tb = tb.tb_next
            location = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
    return (str(record.msg), record.name, exc_type, location)


#: Every guard, for `_after_fork`.
_guards: weakref.WeakSet[StormGuard] = weakref.WeakSet()


def _after_fork() -> None:
    for guard in list(_guards):
        guard._after_fork()


os.register_at_fork(after_in_child=_after_fork)
