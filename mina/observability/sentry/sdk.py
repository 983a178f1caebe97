"""Every use of sentry-sdk's private internals, in one place.

Mina leans on a few names the SDK does not document: the logging integration's breadcrumb
handler and its ``_can_record``/``_extra_from_record``/``_breadcrumb_from_record``
methods, the module-level ``_IGNORED_LOGGERS`` set, and the HTTP transport's
``_send_request``/``_request`` (``mina sentry-check`` records Sentry's answers; pinned
in ``tests/test_cli_sentry_check.py``) and its pool, auth, compression and rate-limit
state (`OutboxSender`, pinned by the outbox tests in ``tests/observability/sentry``).
`tests/observability/sentry/test_sdk.py` pins each of them, so an SDK upgrade that moves
one fails loudly there instead of silently changing what reaches Sentry.

For the fast path (`mina.observability.fastpath`) and presented breadcrumbs, also:
the integration's ``_handler``/``_breadcrumb_handler``/``_sentry_logs_handler``, the
``callHandlers`` wrapper's name, ``Scope._breadcrumbs``/``_n_breadcrumbs_truncated``/
``_event_processors``, the scope module's ``_current_scope``/``_isolation_scope``/
``_global_scope``, ``serializer.MAX_DATABAG_BREADTH``/``global_repr_processors``,
``client.SDK_INFO`` and ``__sentry_repr__`` being taken as is by ``serialize()``; pinned
by `tests/observability/test_sdk_pins.py`. Events serialised without the SDK's walk when
they are plain (`serialize_event`) replace the name ``serialize`` in ``sentry_sdk.client``
and follow ``serializer.MAX_DATABAG_DEPTH``/``MAX_DATABAG_BREADTH`` and the databag paths;
pinned by `tests/observability/sentry/test_sdk_serialize.py`.

Over 400 lines because it is the one home of every private SDK name Mina uses (the
logging handlers, presented breadcrumbs, the outbox's sender, sentry-check's
recorder): split, they would spread through the package again.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from typing import Any, Final

import sentry_sdk
import urllib3
from sentry_sdk import client as sentry_client
from sentry_sdk import scope as sentry_scope
from sentry_sdk import serializer
from sentry_sdk import utils as sentry_utils
from sentry_sdk._types import AnnotatedValue
from sentry_sdk.consts import EndpointType
from sentry_sdk.envelope import Envelope, Item
from sentry_sdk.integrations import logging as sentry_logging
from sentry_sdk.integrations.logging import BreadcrumbHandler, EventHandler, LoggingIntegration
from sentry_sdk.transport import HttpTransport
from sentry_sdk.utils import capture_internal_exceptions, format_timestamp
from sentry_sdk.utils import logger as sdk_logger

from mina.observability.record import BREADCRUMB_HINT, rendered

__all__ = [
    "SPOTLIGHT_TIMEOUT",
    "Delivery",
    "MinaLoggingIntegration",
    "OutboxSender",
    "RecordingTransport",
    "bound_spotlight",
    "quiet_sdk_logger",
]

_NOTHING: Final = logging.CRITICAL + 1  # a level no record reaches

_NAMES_MAX: Final = 4096  # logger names whose ignore decision is remembered


class _NameDecisions:
    """Sentry's ``_can_record`` (every ignored logger matched with `fnmatch`, for each
    record) with the decision remembered per logger name, forgotten whenever the ignore
    list changes."""

    def __init__(self) -> None:
        self._ignored: frozenset[str] = frozenset()
        self._decisions: dict[str, bool] = {}

    def _can_record(self, record: logging.LogRecord) -> bool:
        return self.can_record_name(record.name)

    def can_record_name(self, name: str) -> bool:
        """Return whether records of logger *name* reach Sentry (not ignored)."""
        ignored = sentry_logging._IGNORED_LOGGERS
        if ignored != self._ignored:  # ignore_logger()/unignore_logger() since last time
            self._ignored = frozenset(ignored)
            self._decisions = {}
        decisions = self._decisions
        decision = decisions.get(name)
        if decision is None:
            stripped = name.strip()
            decision = not any(fnmatch(stripped, pattern) for pattern in self._ignored)
            if len(decisions) >= _NAMES_MAX:
                decisions.clear()
            decisions[name] = decision
        return decision


class _BreadcrumbHandler(_NameDecisions, BreadcrumbHandler):
    """Sentry's breadcrumb handler with the same breadcrumbs, for less per record.

    It decides per logger name once (`_NameDecisions`) and reuses the message the stdout
    formatter already put on the record (``record.message``, computed with
    ``getMessage()`` when no formatter did). The breadcrumb itself is built by Sentry's
    own ``_breadcrumb_from_record``.
    """

    def __init__(self, level: int) -> None:
        BreadcrumbHandler.__init__(self, level=level)
        _NameDecisions.__init__(self)

    def _extra_from_record(self, record: logging.LogRecord) -> Any:
        # A structlog call's keys, already collected by the chain (`RenderToLogKwargs`).
        done = rendered(record)
        return dict(done.call) if done is not None else super()._extra_from_record(record)

    def emit(self, record: logging.LogRecord) -> None:
        with capture_internal_exceptions():
            if not self._can_record(record):
                return
            if "message" not in record.__dict__:
                record.message = record.getMessage()
            hint: dict[str, Any] = {"log_record": record}
            done = rendered(record)
            if done is not None:
                # Message (the event name; structlog formats %-args before the chain) and
                # data come from the chain's redacted output.
                hint[BREADCRUMB_HINT] = done
            sentry_sdk.add_breadcrumb(self._breadcrumb_from_record(record), hint=hint)


class _EventHandler(_NameDecisions, EventHandler):
    """Sentry's event handler, skipping the records a call marked breadcrumb-only, and
    deciding per logger name once (`_NameDecisions`).

    See `mina.observability.record.BREADCRUMB_ONLY`: a line that summarises a failure
    with its own event (a 5xx's ``request.finished``) stays a breadcrumb.
    """

    def __init__(self, level: int) -> None:
        EventHandler.__init__(self, level=level)
        _NameDecisions.__init__(self)

    def emit(self, record: logging.LogRecord) -> Any:
        done = rendered(record)
        if done is not None and not done.event:
            return None
        return super().emit(record)


class MinaLoggingIntegration(LoggingIntegration):
    """Sentry's LoggingIntegration (same identifier, options and events) with
    `_BreadcrumbHandler` for breadcrumbs and `_EventHandler` for events."""

    def __init__(
        self,
        level: int | None = logging.INFO,
        event_level: int | None = logging.ERROR,
        **kwargs: Any,
    ) -> None:
        super().__init__(level=level, event_level=event_level, **kwargs)
        if level is not None:
            self._breadcrumb_handler = _BreadcrumbHandler(level=level)
        if event_level is not None:
            self._handler = _EventHandler(level=event_level)


#: Hint key `prepare_in_caller_scope` sets: the event is finished on the event worker,
#: which presents it (`present_serialized`) there, just before serialising it.
DEFERRED_HINT: Final = "_mina_deferred"


def present_serialized(event: Any, hint: Any, client: Any = None) -> Any:
    """Hand `serialize` what is already serialised: an event processor, run last.

    `sentry_sdk.serializer.serialize` walks each event after the event processors.
    Breadcrumbs finished by Mina's ``before_breadcrumb`` (marked, see `log_crumb`; each
    serialised here in one flat pass, `_wire`) and the per-process ``modules`` are handed
    to it as `_Presented` values, which it takes without walking them. An event to be
    finished on the event worker is left as it is here (see `DEFERRED_HINT`); the worker
    calls this with its *client*.
    """
    if not isinstance(event, dict) or (isinstance(hint, dict) and hint.get(DEFERRED_HINT)):
        return event
    if client is None:
        client = sentry_sdk.get_client()
    limit = client.options.get("max_value_length")
    crumbs = event.get("breadcrumbs")
    if type(crumbs) is dict and len(crumbs) == 1:
        values = crumbs.get("values")
        if type(values) is list and values:
            wires = [_wire(crumb, limit) if type(crumb) is dict else None for crumb in values]
            if None not in wires:
                presented = RedactedCrumbs(values=wires)
                event["breadcrumbs"] = _Presented(crumbs, presented)
    modules = event.get("modules")
    if type(modules) is dict:
        wire = _constant("modules", modules, limit)
        if wire is not None:
            event["modules"] = _Presented(modules, wire)
    if event.get("sdk") is None and event.get("type") != "transaction":
        # What the SDK's _prepare_event would add next, already serialised.
        info = _sdk_info(client)
        wire = _constant("sdk", info, limit)
        if wire is not None:
            event["sdk"] = _Presented(info, wire)
    return event


class RedactedCrumbs(dict[str, Any]):
    """Presented breadcrumbs after serialisation: every one redacted by ``before_breadcrumb``
    and serialised already, without the mark it adds, so ``before_send`` keeps them whole."""

    __slots__ = ()


def _sdk_info(client: Any) -> dict[str, Any]:
    # As Client._prepare_event builds it.
    info = dict(sentry_client.SDK_INFO)
    info["integrations"] = sorted(client.integrations.keys())
    return info


def install_presenter() -> None:
    """Run `present_serialized` for every event, after every other global processor.

    Processors of the global scope run after those of ``add_global_event_processor``
    (the SDK's own, such as the one adding ``modules``), whenever either was added.
    """
    scope = sentry_sdk.get_global_scope()
    if present_serialized not in scope._event_processors:
        scope.add_event_processor(present_serialized)


# -- serialising once --------------------------------------------------------------------------


class _Presented(dict[str, Any]):
    """A value with its serialised form: `serialize` returns ``wire`` instead of walking it.

    It is still the original mapping for anything that reads the event before
    serialisation (the SDK counts a truncated buffer's breadcrumbs from it).
    """

    __slots__ = ("wire",)

    def __init__(self, value: dict[str, Any], wire: Any) -> None:
        super().__init__(value)
        self.wire = wire

    def __sentry_repr__(self) -> Any:
        # serialize() returns what a type's __sentry_repr__ gives, as it is.
        return self.wire


#: Set by Mina's ``before_breadcrumb`` on what it returns: "redacted already". Sentry
#: serialises an event (copying every dict) before ``before_send`` sees it, so only a key
#: survives that far; ``before_send`` removes it.
REDACTED_MARK: Final = "_mina_redacted"
_WIRE_SCALARS: Final = frozenset({str, int, bool, type(None)})
_cache: dict[str, tuple[dict[str, Any], Any, int | None]] = {}


def _fits(text: str, limit: int | None) -> bool:
    # Whether sentry_sdk.utils.strip_string leaves *text* as it is under *limit*.
    if limit is None or len(text) * 4 <= limit:  # UTF-8 takes at most 4 bytes a character
        return True
    try:
        return len(text.encode("utf-8")) <= limit
    except UnicodeError:
        return len(text) <= limit


def _wire(crumb: dict[str, Any], max_value_length: int | None) -> dict[str, Any] | None:
    # serialize()'s result for a breadcrumb of strings, numbers and a flat data dict,
    # without its walk: with no repr processors, such values come out as they are when
    # no string is over the limit, the timestamp formatted, a dict of at most 10 keys
    # untrimmed.
    if serializer.global_repr_processors:
        return None
    wire: dict[str, Any] = {}
    if crumb.get(REDACTED_MARK) is not True:
        return None  # not finished by before_breadcrumb: before_send must redact it
    for key, value in crumb.items():
        if key == REDACTED_MARK:
            continue
        if type(key) is not str:
            return None
        if _plain_values((value,), max_value_length):
            wire[key] = value
        elif key == "timestamp" and type(value) is datetime:
            if value.tzinfo is UTC and value.year >= 1000:  # as strftime would, faster
                wire[key] = value.isoformat(timespec="microseconds")[:-6] + "Z"
            else:
                wire[key] = format_timestamp(value)
        elif key == "data" and type(value) is dict:
            if not (
                len(value) <= serializer.MAX_DATABAG_BREADTH
                and all(type(name) is str for name in value)
                and _plain_values(value.values(), max_value_length)
            ):
                return None
            wire[key] = value  # serialize() would make an equal copy; nothing changes it
        else:
            return None
    return wire


def log_crumb(
    level: str, category: str, message: str, moment: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    """The breadcrumb ``before_breadcrumb`` returns for a structlog call: what Sentry's
    breadcrumb handler makes of its record, marked redacted. *moment* is its UTC time."""
    return {
        "type": "log",
        "level": level,
        "category": category,
        "message": message,
        "timestamp": moment,
        "data": data,
        REDACTED_MARK: True,
    }


def _plain_values(values: Iterable[Any], limit: int | None) -> bool:
    # Whether `serialize` returns each of *values* as it is under *limit*: strings that
    # fit, finite floats, ints, bools and None.
    for item in values:
        kind = type(item)
        if kind is str:
            if limit is not None and len(item) * 4 > limit and not _fits(item, limit):
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind not in _WIRE_SCALARS:
            return False
    return True


def _constant(key: str, value: dict[str, Any], limit: int | None) -> Any:
    # modules and sdk are the same for every event of a process: serialised once, and
    # again only when they change (and never presented if serialising annotated them).
    cached = _cache.get(key)
    if cached is not None and cached[2] == limit and (cached[0] is value or cached[0] == value):
        return cached[1]
    out = serializer.serialize({key: value}, max_value_length=limit)
    wire = None if "_meta" in out else out[key]
    _cache[key] = (value, wire, limit)
    return wire


class _NotPlain(Exception):
    """Raised inside `serialize_plain` where only the SDK's walk knows the answer."""


_NOT_PLAIN: Final = _NotPlain()
_SCALAR_TYPES: Final = frozenset({type(None), bool, int})


def serialize_plain(event: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
    """Return what ``sentry_sdk.serializer.serialize(event, **kwargs)`` returns, or None
    when *event* holds anything its walk would change beyond copying.

    `serialize` spends about 7 µs a node on this machine; an error event with its
    contexts, tags and extra is some 40 nodes, the costliest step left on the thread that
    logged the error. Almost every event Mina builds is plain: dicts with ``str`` keys,
    lists, tuples, strings within ``max_value_length``, finite numbers, UTC-convertible
    datetimes and values already presented (`_Presented`). For those, serialising is
    copying each container, formatting datetimes and presenting what is presented; this
    does that, within the SDK's databag rules (``extra`` and each breadcrumb at most
    ``MAX_DATABAG_DEPTH`` deep and ``MAX_DATABAG_BREADTH`` wide). Anything else (a trim,
    a repr, a cycle, a request body, spans, repr processors) returns None so the SDK's
    walk runs. ``tests/observability/sentry/test_sdk_serialize.py`` holds the two equal for
    generated events.
    """
    if serializer.global_repr_processors or "is_vars" in kwargs or type(event) is not dict:
        return None
    limit = kwargs.get("max_value_length")
    meta: dict[str, Any] = {}
    out: dict[str, Any] = {}
    seen = {id(event)}  # the containers above the node being copied: a cycle is not plain
    try:
        for key, value in event.items():
            if type(key) is not str or key in _FALLBACK_TOP:
                return None
            if type(value) is AnnotatedValue:  # as the SDK annotates a top key
                metadata = value.metadata
                if (
                    type(metadata) is not dict
                    or key == "request"
                    or any(type(name) is not str for name in metadata)
                ):
                    return None
                meta[key] = {"": dict(value.metadata)}
                value = value.value
            if key == "extra":
                out[key] = _node(value, limit, 0, seen)
            elif key == "breadcrumbs" and type(value) is dict:
                out[key] = _plain_crumbs(value, limit, seen)
            elif key == "request" and type(value) is dict and "data" in value:
                return None  # a request body: the SDK's body-size rules
            else:
                out[key] = _node(value, limit, None, seen)
    except _NotPlain:
        return None
    if meta:
        out["_meta"] = meta
    return out


#: Top-level keys the fast walk leaves to the SDK: span descriptions and attributes have
#: their own rules, and an event that already has ``_meta`` would have it replaced.
_FALLBACK_TOP: Final = frozenset({"spans", "_meta"})


def _plain_crumbs(crumbs: dict[str, Any], limit: int | None, seen: set[int]) -> dict[str, Any]:
    # ``breadcrumbs``: each item of ``values`` is a databag of its own.
    if id(crumbs) in seen:
        raise _NOT_PLAIN
    seen.add(id(crumbs))
    made: dict[str, Any] = {}
    for name, items in crumbs.items():
        if type(name) is not str:
            raise _NOT_PLAIN
        if name != "values":
            made[name] = _node(items, limit, None, seen)
        elif (type(items) is list or type(items) is tuple) and id(items) not in seen:
            seen.add(id(items))
            made[name] = [_node(crumb, limit, 0, seen) for crumb in items]
            seen.discard(id(items))
        else:
            raise _NOT_PLAIN
    seen.discard(id(crumbs))
    return made


def _node(value: Any, limit: int | None, depth: int | None, seen: set[int]) -> Any:
    # One node as `serialize` makes it; *depth* counts levels inside a databag (None:
    # outside one, no trimming). *seen* holds the ids of the containers above (cycles).
    if depth is not None and depth >= serializer.MAX_DATABAG_DEPTH:
        raise _NOT_PLAIN
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return value
    if kind is float:
        if math.isinf(value) or math.isnan(value):
            raise _NOT_PLAIN
        return value
    if kind is str:
        if _fits(value, limit):
            return value
        raise _NOT_PLAIN
    presented = getattr(kind, "__sentry_repr__", None)
    if callable(presented):
        return presented(value)
    if kind is datetime:
        return format_timestamp(value)
    if kind is dict or kind is list or kind is tuple:
        if (depth is not None and len(value) > serializer.MAX_DATABAG_BREADTH) or id(value) in seen:
            raise _NOT_PLAIN
        seen.add(id(value))
        below = None if depth is None else depth + 1
        if kind is dict:
            made: Any = {}
            for key, item in value.items():
                if type(key) is not str:
                    raise _NOT_PLAIN
                made[key] = _node(item, limit, below, seen)
        else:
            made = [_node(item, limit, below, seen) for item in value]
        seen.discard(id(value))
        return made
    raise _NOT_PLAIN


def serialize_event(event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """`serialize_plain`, else the SDK's own ``serialize``: what the client calls."""
    sentry_utils.disable_capture_event.set(True)  # as serialize() sets it, and unsets it
    try:
        made = serialize_plain(event, **kwargs)
    finally:
        sentry_utils.disable_capture_event.set(False)
    return made if made is not None else _SDK_SERIALIZE(event, **kwargs)


_SDK_SERIALIZE: Final = serializer.serialize


def install_serializer() -> None:
    """Make the SDK's client serialise events with `serialize_event`.

    ``Client._prepare_event`` calls the name ``serialize`` that ``sentry_sdk.client``
    imported; that name is replaced (once, for every client).
    """
    sentry_client.serialize = serialize_event  # type: ignore[attr-defined]


@dataclass(slots=True)
class CallerPart:
    """An error event after the part of ``Client.capture_event`` that needs the caller's
    scope: what the rest (`serialize`, ``before_send``, the envelope) is done with."""

    event: dict[str, Any]
    hint: dict[str, Any]
    #: The release-health session the event marks errored once it is sent (or None).
    session: Any
    event_id: str


def prepare_in_caller_scope(client: Any, event: Any, hint: Any, scope: Any) -> CallerPart | None:
    """Do for an error *event* what ``Client.capture_event`` and ``_prepare_event`` do
    with *scope* (the merged scope ``Scope.capture_event`` passes), in their order; return
    None where they return None.

    ``client.capture_event(part.event, part.hint, None)`` then does the rest, exactly as
    it would have: without a scope it skips what was done here. Pinned, with the SDK's
    code this follows, by `tests/observability/sentry/test_deferred.py`.
    """
    hint = dict(hint or ())
    if not client._should_capture(event, hint, scope):
        return None
    hint[DEFERRED_HINT] = True
    event_id = event.get("event_id")
    if event_id is None:
        event["event_id"] = event_id = uuid.uuid4().hex
    if event.get("timestamp") is None:
        event["timestamp"] = datetime.now(UTC)
    made = scope.apply_to_event(event, hint, client.options)
    if made is None:  # an event processor dropped it
        if client.transport is not None:
            client.transport.record_lost_event("event_processor", data_category="error")
        return None
    truncated = scope._n_breadcrumbs_truncated
    if truncated > 0:
        crumbs = made.get("breadcrumbs", {})
        kept = crumbs.get("values", []) if not isinstance(crumbs, AnnotatedValue) else []
        made["breadcrumbs"] = AnnotatedValue(
            made.get("breadcrumbs", {"values": []}), {"len": len(kept) + truncated}
        )
    return CallerPart(made, hint, scope._session, event_id)


def update_session(client: Any, session: Any, event: dict[str, Any]) -> None:
    """Mark *session* as ``Client.capture_event`` does once it sent *event*."""
    client._update_session_from_event(session, event)


#: Seconds the SDK's Spotlight sender may take for one envelope, on the capturing thread.
SPOTLIGHT_TIMEOUT: Final = 0.5


def bound_spotlight(timeout: float = SPOTLIGHT_TIMEOUT) -> None:
    """Give the SDK's Spotlight sender (``client.spotlight.http``) a timeout and no retries.

    The SDK posts each envelope to the sidecar from the thread that captured it, with
    urllib3's defaults (no timeout, three retries): a sidecar that accepts and never answers
    would hold that thread, a request, for ever. After a failure the SDK skips the sidecar
    for a growing while, so a hung one costs at most *timeout* now and then.
    """
    spotlight = getattr(sentry_sdk.get_client(), "spotlight", None)
    if spotlight is not None:
        spotlight.http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)


def quiet_sdk_logger(debug: bool) -> None:
    """Set the SDK's own logger to DEBUG with *debug*, else to a level no record reaches.

    Without debug, the SDK's own filter drops every record of its logger, yet the logger
    is set to DEBUG: two records a request would be built for nothing.
    """
    sdk_logger.setLevel(logging.DEBUG if debug else _NOTHING)


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


#: Connections `OutboxSender` keeps open: as many as the outbox sends at once.
POOL_SIZE: Final = 4


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
        options["maxsize"] = POOL_SIZE  # the outbox's requests in flight, each kept alive
        return options

    def post(self, envelope: bytes, read_timeout: float | None = None) -> tuple[int, str | None]:
        """POST the serialized *envelope*; return the status and the ``Retry-After`` value.

        *read_timeout* (seconds) replaces the pool's read timeout for this request.

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
            timeout=urllib3.Timeout(
                connect=self._timeout,
                read=self._timeout if read_timeout is None else read_timeout,
            ),
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


# -- the fast path's view of the logging integration ------------------------------------------

#: Sentry's level names for stdlib levels (what its handlers put in ``level``).
LOGGING_TO_EVENT_LEVEL: Final = sentry_logging.LOGGING_TO_EVENT_LEVEL

_PATCH_NAME: Final = "LoggingIntegration.setup_once.<locals>.sentry_patched_callhandlers"


def is_sentry_call_handlers(func: object) -> bool:
    """Return whether *func* is the SDK's wrapper of ``logging.Logger.callHandlers``.

    The wrapper calls the original, then hands the record to the client's
    LoggingIntegration (`LoggingIntegration._handle_record`) unless its logger is ignored.
    """
    return (
        getattr(func, "__qualname__", None) == _PATCH_NAME
        and getattr(func, "__module__", None) == sentry_logging.__name__
    )


def active_client() -> tuple[Any, Any]:
    """Return ``(client, current)``: the client ``Scope.get_client()`` returns if it is
    active (else None) and the current scope (None if this context has none yet).

    What ``Scope.get_client()`` and ``Scope.get_current_scope()`` find, with each of
    Sentry's context variables read once: a log call needs both.
    """
    current = sentry_scope._current_scope.get()
    client = current.client if current is not None else None
    if client is not None and client.is_active():
        return client, current
    isolation = sentry_scope._isolation_scope.get()
    client = isolation.client if isolation is not None else None
    if client is not None and client.is_active():
        return client, current
    outer = sentry_scope._global_scope
    client = outer.client if outer is not None else None
    return (client if client is not None and client.is_active() else None), current


def sentry_ignored() -> set[str]:
    """The logger names (and patterns) the SDK's logging integration ignores, live."""
    return sentry_logging._IGNORED_LOGGERS


def ignored_exactly(name: str) -> bool:
    """Return whether the SDK's callHandlers wrapper skips records of logger *name*."""
    return name.strip() in sentry_logging._IGNORED_LOGGERS


class CrumbRoute:
    """Where a client's LoggingIntegration sends a record of some level, read once per client.

    :ivar event_level: records at or above it become events (None: never).
    :ivar crumb_handler: Mina's breadcrumb handler (None: the integration has another one).
    :ivar plain: no Sentry Logs handler and no handler filters: nothing else sees records.
    """

    __slots__ = (
        "client",
        "crumb_handler",
        "event_handler",
        "event_level",
        "hook_redactor",
        "max_breadcrumbs",
        "plain",
    )

    def __init__(self, client: Any) -> None:
        self.client = client
        integration = client.get_integration(LoggingIntegration)
        self.event_level: int | None = None
        #: The integration's event handler (None: no events), which a fast ERROR record meets.
        self.event_handler: EventHandler | None = None
        self.crumb_handler: _BreadcrumbHandler | None = None
        self.plain = False
        self.max_breadcrumbs: int = client.options.get("max_breadcrumbs", 100)
        #: The redactor of Mina's ``before_breadcrumb`` (None: the client has another hook).
        self.hook_redactor: Any = getattr(
            client.options.get("before_breadcrumb"), "mina_redactor", None
        )
        if integration is None:
            self.plain = True  # the wrapper finds no integration: records reach no handler
            return
        events = integration._handler
        self.event_handler = events
        crumbs = integration._breadcrumb_handler
        self.event_level = events.level if events is not None else None
        if type(crumbs) is _BreadcrumbHandler and not crumbs.filters:
            self.crumb_handler = crumbs
        self.plain = (
            integration._sentry_logs_handler is None
            and (events is None or not events.filters)
            and (crumbs is None or self.crumb_handler is not None)
        )


def append_breadcrumb(scope: Any, crumb: dict[str, Any], max_breadcrumbs: int) -> None:
    """Append a finished breadcrumb to *scope*, as `Scope.add_breadcrumb` does after its hook.

    For breadcrumbs that already are what ``before_breadcrumb`` would return.
    """
    crumbs = scope._breadcrumbs
    crumbs.append(crumb)
    while len(crumbs) > max_breadcrumbs:
        crumbs.popleft()
        scope._n_breadcrumbs_truncated += 1
