"""The HTTP senders: sentry-sdk's own HTTP transport, subclassed.

`RecordingTransport` records Sentry's answers for ``mina sentry-check`` through the
transport's ``_send_request``/``_request`` (pinned in ``tests/test_cli_sentry_check.py``);
`OutboxSender` sends what the outbox kept with its pool, auth, compression and rate-limit
state (pinned by the outbox tests in ``tests/observability/sentry``).
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import urllib3
from sentry_sdk.consts import EndpointType
from sentry_sdk.envelope import Envelope, Item
from sentry_sdk.transport import HttpTransport

__all__ = ["Delivery", "OutboxSender", "RecordingTransport"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one envelope the transport handled.

    ``status`` is the HTTP status Sentry answered, or None when there was no answer
    (``error`` then says why) or when the transport did not send it (``dropped`` names the
    SDK's reason, e.g. ``ratelimit_backoff`` after a 429).
    """

    event_ids: tuple[str, ...]
    status: int | None = None
    headers: Mapping[str, str] | None = None
    body: bytes = b""
    error: BaseException | None = None
    dropped: str | None = None


def _event_ids(items: list[Item]) -> tuple[str, ...]:
    ids = []
    for item in items:
        event = item.get_event()
        if event is not None and event.get("event_id"):
            ids.append(str(event["event_id"]))
    return tuple(ids)


class RecordingTransport(HttpTransport):
    """sentry-sdk's own HTTP transport, recording each answer (or failure) as a `Delivery`.

    The sending is the SDK's, unchanged: rate limits, compression, proxies, client
    reports. Pass the class as ``sentry_sdk.init(transport=RecordingTransport)``; the
    instance is ``sentry_sdk.get_client().transport``.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self._lock = threading.Lock()
        self._sending: tuple[str, ...] = ()
        self._deliveries: list[Delivery] = []

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery so far, in order."""
        with self._lock:
            return list(self._deliveries)

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def _send_request(
        self,
        body: bytes,
        headers: dict[str, str],
        endpoint_type: Any,
        envelope: Envelope | None = None,
    ) -> None:
        # One worker thread sends, one request at a time: _request knows whose it is.
        self._sending = _event_ids(envelope.items) if envelope is not None else ()
        super()._send_request(body, headers, endpoint_type, envelope)

    def _request(
        self, method: str, endpoint_type: Any, body: Any, headers: Mapping[str, str]
    ) -> Any:
        try:
            response = super()._request(method, endpoint_type, body, headers)
        except Exception as exc:
            self._record(Delivery(self._sending, error=exc))
            raise
        answer = {name.lower(): value for name, value in response.headers.items()}
        self._record(Delivery(self._sending, response.status, answer, bytes(response.data)))
        return response

    def record_lost_event(
        self,
        reason: str,
        data_category: Any = None,
        item: Item | None = None,
        *,
        quantity: int = 1,
    ) -> None:
        """Record events the SDK dropped before sending (rate limits, a full queue)."""
        ids = _event_ids([item]) if item is not None else ()
        if ids and reason not in {"network_error", "send_error"}:  # those had a request
            self._record(Delivery(ids, dropped=reason))
        super().record_lost_event(reason, data_category, item, quantity=quantity)


class OutboxSender(HttpTransport):
    """Sentry's HTTP transport used only to send bytes the outbox kept.

    Reuses the SDK's connection pool (proxies, certificates), auth header, compression and
    rate-limit bookkeeping (``_update_rate_limits``, ``_check_disabled``,
    ``_disabled_until``), but never its queue: `mina.observability.sentry.transport` owns
    retrying. Each request has a short socket timeout and no urllib3 retries, so a hung
    Sentry holds the sending thread for *timeout* seconds, not 30 seconds times four.
    """

    def __init__(self, options: dict[str, Any], timeout: float) -> None:
        self._timeout = timeout
        super().__init__(options)

    def _get_pool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = super()._get_pool_options()
        options["timeout"] = urllib3.Timeout(connect=self._timeout, read=self._timeout)
        options["retries"] = False
        return options

    def post(self, envelope: bytes) -> tuple[int, str | None]:
        """POST the serialized *envelope*; return the status and the ``Retry-After`` value.

        Rate-limit headers are applied before returning, whatever the status.

        :raises Exception: whatever urllib3 raises for a refused, reset or timed-out request.
        """
        headers = {"Content-Type": "application/x-sentry-envelope"}
        if self._compression_algo == "br":  # only chosen when brotli imports
            import brotli  # type: ignore[import-untyped]

            body = brotli.compress(envelope, quality=self._compression_level)
            headers["Content-Encoding"] = "br"
        elif self._compression_algo == "gzip" and self._compression_level:
            body = gzip.compress(envelope, compresslevel=self._compression_level)
            headers["Content-Encoding"] = "gzip"
        else:
            body = envelope
        self._update_headers(headers)
        response = self._pool.request(
            "POST",
            self._auth.get_api_url(EndpointType.ENVELOPE),
            body=body,
            headers=headers,
            retries=False,
            preload_content=True,
        )
        try:
            self._update_rate_limits(response)
            return response.status, response.headers.get("Retry-After")
        finally:
            response.close()

    def blocked(self, categories: Iterable[str]) -> bool:
        """Whether Sentry asked for any of *categories* to wait (429, rate-limit header)."""
        return any(self._check_disabled(category) for category in categories)

    def blocked_all(self) -> bool:
        """Whether Sentry asked for every category to wait (a 429 without categories)."""
        return self._check_disabled("")

    def limited_for(self) -> float:
        """Seconds until the soonest rate limit ends (0.0 without any)."""
        now = datetime.now(UTC)
        ends = [until for until in self._disabled_until.values() if until > now]
        return (min(ends) - now).total_seconds() if ends else 0.0

    def limited_categories(self) -> list[str]:
        """The categories rate-limited now (``all`` for a limit on every category)."""
        now = datetime.now(UTC)
        return sorted(
            category or "all" for category, until in self._disabled_until.items() if until > now
        )
