"""
Helpers for testing code that reports to Sentry.

:class:`SentryIngest` is a real, local Sentry-protocol HTTP ingest: the SDK's own
``HttpTransport`` sends to it over 127.0.0.1, and it parses what arrives the way Sentry does.
Use it instead of a stubbed transport::

    with SentryIngest() as ingest:
        sentry_sdk.init(dsn=ingest.dsn)
        sentry_sdk.capture_message("hello")
        assert "hello" == ingest.wait_for_events()[0]["message"]

Nothing here depends on pytest.

Over 400 lines because it is a small Sentry server in one object: the envelope protocol
(framing, compression, item lengths), what it recorded, and the faults a test can inject.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import secrets
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

__all__ = ["JSON_ITEM_TYPES", "Envelope", "Item", "Request", "SentryIngest", "parse_envelope"]

#: Item types whose payload is JSON, per https://develop.sentry.dev/sdk/envelopes/.
#: Payloads of other types (attachments, replay recordings, statsd, ...) stay bytes.
JSON_ITEM_TYPES = frozenset(
    {
        "event",
        "transaction",
        "session",
        "sessions",
        "client_report",
        "check_in",
        "log",
        "otel_log",
        "span",
        "trace_metric",
        "profile",
        "profile_chunk",
        "replay_event",
        "user_report",
        "feedback",
        "metric_meta",
    }
)

_ROUTE = re.compile(r"/api/(?P<project>[^/]+)/(?P<endpoint>envelope|store)/")
_AUTH_KEY = re.compile(r"sentry_key=([^,\s]+)")


@dataclass(frozen=True)
class Item:
    """One envelope item: its header line and its payload."""

    #: The item header, e.g. ``{"type": "event", "length": 123}``.
    headers: dict[str, Any]
    #: The payload exactly as received.
    payload: bytes
    #: The decoded payload for JSON item types (see ``JSON_ITEM_TYPES``), else ``None``.
    json: Any

    @property
    def type(self) -> str:
        """The item type, e.g. ``"event"``, ``"transaction"``, ``"attachment"``."""
        return str(self.headers["type"])


@dataclass(frozen=True)
class Envelope:
    """One parsed envelope (a legacy ``store`` request is recorded as a one-item envelope)."""

    #: The envelope header, e.g. ``{"event_id": ..., "sent_at": ..., "sdk": {...}}``.
    headers: dict[str, Any]
    items: list[Item]
    #: The route it arrived on.
    endpoint: Literal["envelope", "store"]
    #: The HTTP status the ingest answered it with (2xx: Sentry would have kept it).
    status: int = 200


@dataclass(frozen=True)
class Request:
    """One HTTP request the ingest received, and what it answered."""

    method: str
    #: Path including any query string.
    path: str
    #: Request headers with lower-cased names.
    headers: dict[str, str]
    #: The body after undoing ``Content-Encoding`` (as received if that failed).
    body: bytes
    #: The HTTP status the ingest answered with.
    status: int


def parse_envelope(data: bytes) -> Envelope:
    """
    Parse an uncompressed envelope as specified at https://develop.sentry.dev/sdk/envelopes/.

    The first line is the JSON envelope header. Each item is a JSON header line followed by its
    payload: exactly ``length`` bytes (then an optional newline) when the header has a
    ``length``, otherwise everything up to the next newline.

    Raises:
        ValueError: The data is not a well-formed envelope.
    """
    header_line, pos = _read_line(data, 0)
    headers = _json_object(header_line, "envelope header")
    items: list[Item] = []
    while pos < len(data):
        line, pos = _read_line(data, pos)
        if not line.strip():  # Sentry tolerates whitespace between items.
            continue
        item_headers = _json_object(line, f"header of item {len(items)}")
        type_ = item_headers.get("type")
        if not isinstance(type_, str):
            raise ValueError(f"item {len(items)} has no string 'type': {item_headers!r}")
        length = item_headers.get("length")
        if length is None:
            payload, pos = _read_line(data, pos)
        else:
            if type(length) is not int or length < 0:
                raise ValueError(f"item {len(items)} has a bad 'length': {length!r}")
            end = pos + length
            if end > len(data):
                raise ValueError(
                    f"item {len(items)} ({type_}) declares length {length} "
                    f"but only {len(data) - pos} bytes remain"
                )
            payload = data[pos:end]
            pos = end + 1 if data[end : end + 1] == b"\n" else end
        parsed = None
        if type_ in JSON_ITEM_TYPES:
            try:
                parsed = json.loads(payload)
            except ValueError as exc:
                raise ValueError(f"item {len(items)} ({type_}) is not JSON: {exc}") from None
        items.append(Item(headers=item_headers, payload=payload, json=parsed))
    return Envelope(headers=headers, items=items, endpoint="envelope")


def _read_line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(b"\n", pos)
    if end == -1:
        return data[pos:], len(data)
    return data[pos:end], end + 1


def _json_object(line: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON: {exc}: {line[:200]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object: {line[:200]!r}")
    return value


def _decode(body: bytes, encoding: str) -> bytes:
    """Undo ``Content-Encoding``; raise ValueError for an unknown encoding or a corrupt body."""
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        try:
            return gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"corrupt gzip body: {exc}") from None
    if encoding == "br":
        import brotli  # type: ignore[import-untyped]  # dev dependency, only needed here

        try:
            return bytes(brotli.decompress(body))
        except brotli.error as exc:
            raise ValueError(f"corrupt brotli body: {exc}") from None
    raise ValueError(f"unsupported Content-Encoding: {encoding!r}")


class SentryIngest:
    """
    A local Sentry ingest on 127.0.0.1 that records every request it receives.

    Serves ``POST /api/<project>/envelope/`` (what sentry-sdk 2.x sends) and the legacy
    ``POST /api/<project>/store/`` (one JSON event), with ``Content-Encoding`` gzip, br or
    identity. It checks the ``sentry_key`` and project id against :attr:`dsn` the way Sentry
    does (401 / 404). Protocol errors are answered with 400 and listed in :attr:`errors`.

    All accessors are thread-safe and return snapshots.

    Args:
        project_id: The project id in :attr:`dsn`.
        status: HTTP status to answer well-formed requests with (see :meth:`respond_with`).
        headers: Extra response headers, e.g. ``{"Retry-After": "1"}``.
        delay: Seconds to wait before answering each request.
        port: The port to listen on; 0 (the default) takes a free one.
        public_key: The key in :attr:`dsn` (default: a random one).

    Faults for outage tests: ``respond_with(500)``, ``respond_with(429, {"Retry-After":
    "1"})``, ``respond_with(delay=2)`` (slow), ``respond_with(hang=True)`` (reads the request,
    never answers, records nothing), and :meth:`stop` then :meth:`start` (connections
    refused meanwhile; the same port and :attr:`dsn` afterwards).
    """

    def __init__(
        self,
        project_id: int = 1,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        port: int = 0,
        public_key: str | None = None,
    ) -> None:
        self.project_id = project_id
        #: The 32 hex digit public key in :attr:`dsn`.
        self.public_key = public_key or secrets.token_hex(16)
        self._cond = threading.Condition(threading.RLock())
        self._requests: list[Request] = []
        self._envelopes: list[Envelope] = []
        self._errors: list[str] = []
        self._status = status
        self._headers = dict(headers or {})
        self._delay = delay
        self._hang = False
        self._unhang = threading.Event()
        self._port = port
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Life cycle

    def start(self) -> SentryIngest:
        """Bind a port on 127.0.0.1 and serve in a daemon thread: an ephemeral one the first
        time, the same one again after :meth:`stop` (so :attr:`dsn` stays valid)."""
        if self._server is not None:
            raise RuntimeError("SentryIngest is already started")
        self._stopping.clear()
        self._unhang.clear()
        self._server = _Server(self, self._port)
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"SentryIngest:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, cut short any pending response delay, close the socket. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        self._unhang.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> SentryIngest:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the ingest listens on (only while started)."""
        if self._server is None:
            raise RuntimeError("SentryIngest is not started")
        return int(self._server.server_address[1])

    @property
    def dsn(self) -> str:
        """
        The DSN to pass to ``sentry_sdk.init(dsn=...)`` (only while started).

        Where ``HTTP_PROXY`` may be set, also pass ``http_proxy=""`` so the SDK connects directly.
        """
        return f"http://{self.public_key}@127.0.0.1:{self.port}/{self.project_id}"

    # Behaviour

    def respond_with(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        *,
        hang: bool = False,
    ) -> None:
        """
        Answer every following well-formed request with ``status`` and extra ``headers``, and
        every request only after ``delay`` seconds. E.g. ``respond_with(429, {"Retry-After":
        "60"})`` simulates rate limiting, ``respond_with(delay=3)`` a slow Sentry. Requests are
        still recorded. With ``hang=True`` a request is read and never answered (the
        connection is closed, unanswered, when the ingest leaves that mode or stops) and
        nothing is recorded: a Sentry that accepts connections and hangs. ``respond_with()``
        restores normal answers.
        """
        with self._cond:
            self._status = status
            self._headers = dict(headers or {})
            self._delay = delay
            self._hang = hang
            if hang:
                self._unhang.clear()
            else:
                self._unhang.set()

    def clear(self) -> None:
        """Forget everything received so far."""
        with self._cond:
            self._requests.clear()
            self._envelopes.clear()
            self._errors.clear()

    # Recorded data

    @property
    def requests(self) -> list[Request]:
        """Every request received, in order."""
        with self._cond:
            return list(self._requests)

    @property
    def raw_bodies(self) -> list[bytes]:
        """The decoded body of every request received, e.g. to assert a secret is in none."""
        with self._cond:
            return [request.body for request in self._requests]

    @property
    def envelopes(self) -> list[Envelope]:
        """Every well-formed envelope (or store event) received, in order."""
        with self._cond:
            return list(self._envelopes)

    @property
    def errors(self) -> list[str]:
        """Protocol errors: what a real Sentry would have rejected, and why."""
        with self._cond:
            return list(self._errors)

    def items(self, type_: str) -> list[Item]:
        """All items of type ``type_`` across all envelopes, in order."""
        with self._cond:
            return [item for env in self._envelopes for item in env.items if item.type == type_]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The payloads of all ``event`` items (errors and messages)."""
        return [item.json for item in self.items("event")]

    @property
    def accepted_events(self) -> list[dict[str, Any]]:
        """The payloads of ``event`` items in envelopes answered with a 2xx: what Sentry
        would have kept (an outage test counts delivery with these)."""
        with self._cond:
            return [
                item.json
                for env in self._envelopes
                if 200 <= env.status < 300
                for item in env.items
                if item.type == "event"
            ]

    @property
    def transactions(self) -> list[dict[str, Any]]:
        """The payloads of all ``transaction`` items."""
        return [item.json for item in self.items("transaction")]

    @property
    def logs(self) -> list[dict[str, Any]]:
        """All Sentry Logs records: the ``items`` of every ``log`` item, flattened."""
        return [log for item in self.items("log") for log in item.json.get("items", [])]

    # Waiting

    def wait(self, predicate: Callable[[SentryIngest], bool], timeout: float = 5.0) -> bool:
        """
        Block until ``predicate(self)`` is true or ``timeout`` seconds pass; return its last
        value. Re-checked only when a request arrives, never polled.
        """
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def wait_for_items(self, type_: str, n: int = 1, timeout: float = 5.0) -> list[Item]:
        """
        Wait until at least ``n`` items of type ``type_`` arrived and return all of them.

        Raises:
            AssertionError: On timeout, saying what did arrive.
        """
        if not self.wait(lambda ingest: len(ingest.items(type_)) >= n, timeout):
            self._fail(f"{n} {type_!r} item(s)", timeout)
        return self.items(type_)

    def wait_for_events(self, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` events arrived and return all of them."""
        return [item.json for item in self.wait_for_items("event", n, timeout)]

    def wait_for_transactions(self, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` transactions arrived and return all of them."""
        return [item.json for item in self.wait_for_items("transaction", n, timeout)]

    def wait_for_logs(self, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least ``n`` Sentry Logs records arrived and return all of them."""
        if not self.wait(lambda ingest: len(ingest.logs) >= n, timeout):
            self._fail(f"{n} log record(s)", timeout)
        return self.logs

    def _fail(self, wanted: str, timeout: float) -> None:
        with self._cond:
            types = [item.type for env in self._envelopes for item in env.items]
            got = f"{len(self._requests)} request(s) with item types {types}"
            if self._errors:
                got += f" and protocol errors {self._errors}"
        raise AssertionError(f"expected at least {wanted} within {timeout}s, got {got}")

    # Called from the server's handler threads

    def _handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> _Answer | None:
        with self._cond:
            status, extra, delay, hang = self._status, self._headers, self._delay, self._hang
        if hang:
            self._unhang.wait()
            return None
        body = raw
        envelope: Envelope | None = None
        try:
            if "content-length" not in headers:
                raise _Reject(411, "Content-Length required")
            body = _decode(raw, headers.get("content-encoding", "").strip().lower())
            envelope = self._parse(path, headers, body)
        except _Reject as exc:
            answer: _Answer = (exc.status, {}, {"detail": exc.detail})
        except ValueError as exc:
            answer = (400, {}, {"detail": str(exc)})
        else:
            event_id = envelope.headers.get("event_id")
            if status == 200:
                answer = (status, extra, {"id": event_id} if event_id else {})
            else:
                answer = (status, extra, {"detail": f"SentryIngest.respond_with({status})"})
        with self._cond:
            self._requests.append(Request(method, path, headers, body, answer[0]))
            if envelope is None:
                self._errors.append(f"{method} {path} -> {answer[0]}: {answer[2]['detail']}")
            else:
                self._envelopes.append(dataclasses.replace(envelope, status=answer[0]))
            self._cond.notify_all()
        self._stopping.wait(delay)
        return answer

    def _parse(self, path: str, headers: dict[str, str], body: bytes) -> Envelope:
        url = urlsplit(path)
        route = _ROUTE.fullmatch(url.path)
        if route is None or route["project"] != str(self.project_id):
            raise _Reject(404, f"no such route or project: {url.path}")
        key = parse_qs(url.query).get("sentry_key", [None])[0]
        auth = _AUTH_KEY.search(headers.get("x-sentry-auth", ""))
        if (auth[1] if auth else key) != self.public_key:
            raise _Reject(401, "missing or wrong sentry_key")
        if route["endpoint"] == "envelope":
            return parse_envelope(body)
        event = _json_object(body, "store event")
        type_ = "transaction" if event.get("type") == "transaction" else "event"
        item = Item(headers={"type": type_, "length": len(body)}, payload=body, json=event)
        return Envelope(
            headers={"event_id": event["event_id"]} if "event_id" in event else {},
            items=[item],
            endpoint="store",
        )


_Answer = tuple[int, Mapping[str, str], dict[str, Any]]


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Server(ThreadingHTTPServer):
    def __init__(self, ingest: SentryIngest, port: int) -> None:
        self.ingest = ingest
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: a client hanging up mid-answer is not worth a traceback on stderr."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        raw = self.rfile.read(int(length)) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.ingest._handle("POST", self.path, headers, raw)
        if answer is None:  # hung up without an answer
            self.close_connection = True
            return
        status, extra, payload = answer
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: never write access logs to stderr."""
