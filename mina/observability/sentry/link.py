"""The link to Sentry as the outbox's sender sees it: one request, its answer, the state.

`Link.attempt` sends one envelope and decides from the answer what happens to it and to
the requests after it; the state (``ok``, ``unreachable``, ``rate_limited``,
``rejected``) is logged once per change, with the outbox depth, instead of a warning per
envelope:

- 2xx: delivered; ends any outage with one ``sentry.recovered`` line.
- a refused, reset or timed-out connection, a 5xx or 408: kept; the next try waits
  0.5 s, 1 s, 2 s … up to ``retry_max`` (jitter: half to all of it), or longer when a 5xx
  says ``Retry-After``.
- a read that timed out: Sentry may have the envelope. It is put *in doubt*: sent after
  the others (`Link.order`), not again at once, and later requests wait four times longer
  for an answer (at most ``_TIMEOUT_GROWTH_MAX`` times the timeout; back once answers are
  quick), so a Sentry that is slow, not down, receives each event about once.
- 429 or ``X-Sentry-Rate-Limits``: the SDK's per-category bookkeeping; other categories go on.
- 401/403: the DSN is wrong; one ``sentry.rejected`` line (project and host, never the
  key), the envelope kept, the next try after ``rejected_retry`` seconds.
- another 4xx: Sentry will never take it (`Attempt.refused`); the caller counts it lost.

Several poster threads share one `Link`; every change of state is made under its lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Final, Literal, NamedTuple, TypeVar

from sentry_sdk.utils import Dsn
from urllib3.exceptions import ReadTimeoutError

from mina.observability.pipeline import get_logger
from mina.observability.sentry.sdk_http import POOL_SIZE, OutboxSender

__all__ = ["LOGGER", "REJECTED_RETRY_SECONDS", "SENDERS", "Attempt", "Link", "State"]

#: The logger of every line Mina's Sentry code writes (hooks, transport, storms); Sentry
#: ignores it, so no event is ever about sending events.
LOGGER: Final = "mina.sentry"
#: Seconds between tries while Sentry answers 401/403 (the DSN's key is wrong or revoked):
#: a wrong key is fixed by configuration, not by retrying every few seconds.
REJECTED_RETRY_SECONDS: Final = 300.0
#: Requests to Sentry in flight at most per process while Sentry answers slowly but in
#: time: a slow answer holds one of them, not every envelope behind it. One at a time
#: while answers are quick, and after a failure until an envelope is delivered (fewer
#: copies while in doubt).
SENDERS: Final = POOL_SIZE

_RETRY_BASE: Final = 0.5  # seconds before the first retry; doubles per failure
#: A read that timed out makes the next wait four times as long, up to this many times the
#: configured timeout; a quick answer brings it back.
_TIMEOUT_GROWTH_MAX: Final = 8

_log = get_logger(LOGGER)

State = Literal["ok", "unreachable", "rate_limited", "rejected"]
T = TypeVar("T")


class Attempt(NamedTuple):
    """What one request decided."""

    #: Keep the envelope (put it back) rather than delete it.
    keep: bool
    #: Go on with the next envelope in this pass.
    go_on: bool
    #: The request timed out waiting for the answer: Sentry may have the envelope.
    timed_out: bool = False
    #: The 4xx status of an envelope Sentry will never take (to be counted lost).
    refused: int | None = None


class Link:
    """The state of the link to the Sentry of *dsn* (see the module docstring).

    :param timeout: socket timeout of one request, in seconds.
    :param retry_max: longest wait between retries, in seconds.
    :param depth: the outbox's ``outbox_depth`` and ``outbox_bytes``, for the lines.
    """

    def __init__(
        self,
        dsn: str,
        *,
        timeout: float,
        retry_max: float,
        rejected_retry: float,
        depth: Callable[[], dict[str, int]],
    ) -> None:
        self.dsn = Dsn(dsn)
        self.timeout = timeout
        self.retry_max = retry_max
        #: Seconds between tries while Sentry answers 401/403.
        self.rejected_retry = rejected_retry
        self._depth = depth
        self._lock = threading.RLock()
        self.state: State = "ok"
        self._retry_at = 0.0
        self._failures = 0
        self._streak = 0  # envelopes delivered since the last failure
        self._down_since = 0.0
        self._limited: frozenset[str] = frozenset()  # categories announced as limited
        self._read_timeout = timeout
        self._slow = False  # the last answer took half the timeout or more
        self._doubt: dict[str, int] = {}  # outbox id -> requests that timed out reading

    def wait(self) -> float:
        """Seconds until the next try is due (0.0 when it is)."""
        return max(self._retry_at - time.monotonic(), 0.0)

    def try_now(self) -> None:
        """Make the next try due now (a flush tries once even while backing off)."""
        self._retry_at = 0.0

    def room(self) -> int:
        """How many requests may be in flight: one while answers are quick (envelopes
        arrive in the order sent), `SENDERS` while Sentry answers slowly but in time, one
        again after a failure until an envelope is delivered."""
        with self._lock:
            return SENDERS if self.state == "ok" and self._streak and self._slow else 1

    def order(self, entries: list[T], id_of: Callable[[T], str]) -> list[T]:
        """*entries* with those in doubt last (the rest keep their order); forgets the
        doubt about ids no longer among them."""
        with self._lock:
            if not self._doubt:
                return entries
            ids = {id_of(entry) for entry in entries}
            self._doubt = {id_: n for id_, n in self._doubt.items() if id_ in ids}
            return sorted(entries, key=lambda entry: id_of(entry) in self._doubt)

    def attempt(self, sender: OutboxSender, data: bytes, id_: str | None) -> Attempt:
        """POST *data* (outbox id *id_*, None for one held in memory) and decide."""
        started = time.monotonic()
        with self._lock:
            read_timeout = self._read_timeout
        try:
            status, retry_after = sender.post(data, read_timeout=read_timeout)
        except Exception as exc:  # refused, reset, timed out, DNS: Sentry is unreachable
            timed_out = isinstance(exc, ReadTimeoutError)
            with self._lock:
                if timed_out:
                    if id_ is not None:
                        self._doubt[id_] = self._doubt.get(id_, 0) + 1
                    self._read_timeout = min(
                        max(self._read_timeout, read_timeout * 4),
                        self.timeout * _TIMEOUT_GROWTH_MAX,
                    )
                self._unreachable(type(exc).__name__, None)
            return Attempt(keep=True, go_on=False, timed_out=timed_out)
        with self._lock:
            self._note_limits(sender)
            if 200 <= status < 300:
                if id_ is not None:
                    self._doubt.pop(id_, None)
                self._slow = time.monotonic() - started >= self.timeout / 2
                if not self._slow:
                    self._read_timeout = self.timeout  # quick again
                self._delivered()
                return Attempt(keep=False, go_on=True)
            if status == 429:
                if self.state == "ok":
                    self._down_since = time.monotonic()
                self.state = "rate_limited"  # the line came from _note_limits
                return Attempt(keep=True, go_on=True)  # other categories may still go
            if status in (401, 403):
                self._rejected(status)
                return Attempt(keep=True, go_on=False)
            if status >= 500 or status == 408:
                self._unreachable(f"HTTP {status}", retry_after)
                return Attempt(keep=True, go_on=False)
        return Attempt(keep=False, go_on=True, refused=status)

    def _unreachable(self, error: str, retry_after: str | None) -> None:
        self._failures += 1
        self._streak = 0
        delay = min(self.retry_max, _RETRY_BASE * 2 ** min(self._failures - 1, 30))
        delay *= random.uniform(0.5, 1.0)  # jitter: workers sharing a host spread out
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), self.retry_max))
        self._retry_at = time.monotonic() + delay
        if self.state != "unreachable":
            if self.state == "ok":
                self._down_since = time.monotonic()
            self.state = "unreachable"
            _log.warning(
                "sentry.unreachable", error=error, retry_in=round(delay, 3), **self._depth()
            )

    def _rejected(self, status: int) -> None:
        self._failures += 1
        self._streak = 0
        self._retry_at = time.monotonic() + self.rejected_retry
        if self.state == "rejected":
            return
        if self.state == "ok":
            self._down_since = time.monotonic()
        self.state = "rejected"
        _log.error(
            "sentry.rejected",
            status=status,
            project=self.dsn.project_id,
            host=self.dsn.netloc,
            reason="Sentry refused the DSN's key: check SENTRY_DSN",
            retry_in=self.rejected_retry,
            **self._depth(),
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

    def _delivered(self) -> None:
        self._streak += 1
        failures, self._failures = self._failures, 0
        self._retry_at = 0.0
        if self.state != "ok":
            was, self.state = self.state, "ok"
            _log.info(
                "sentry.recovered",
                was=was,
                failed_attempts=failures,
                down_seconds=round(time.monotonic() - self._down_since, 3),
                **self._depth(),
            )
