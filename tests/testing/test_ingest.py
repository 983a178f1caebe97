"""Tests for mina.testing.SentryIngest: the real sentry-sdk transport sends to it."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
import sentry_sdk
from sentry_sdk import logger as sentry_logger

from mina.testing import Envelope, Item, SentryIngest, parse_envelope

InitSentry = Callable[..., None]


@pytest.fixture
def init_sentry(sentry_ingest: SentryIngest) -> Iterator[InitSentry]:
    """Call to point the global sentry_sdk client at ``sentry_ingest``; closed afterwards."""

    def init(**options: Any) -> None:
        sentry_sdk.init(
            dsn=sentry_ingest.dsn,
            default_integrations=False,
            auto_enabling_integrations=False,
            http_proxy="",  # connect directly even if HTTP_PROXY is set
            **options,
        )

    yield init
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)


def post(
    sentry_ingest: SentryIngest,
    body: bytes,
    *,
    path: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], Any]:
    """POST like the SDK does; return status, headers and the JSON answer."""
    conn = http.client.HTTPConnection("127.0.0.1", sentry_ingest.port, timeout=timeout)
    try:
        conn.request(
            "POST",
            path or f"/api/{sentry_ingest.project_id}/envelope/",
            body,
            {
                "X-Sentry-Auth": f"Sentry sentry_key={sentry_ingest.public_key}, sentry_version=7",
                "Content-Type": "application/x-sentry-envelope",
                **(headers or {}),
            },
        )
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


# A hand-made envelope: a binary attachment with a length (containing newlines and NULs),
# an event without a length, and a last item with a length and no trailing newline.
BINARY = b"\x00\x01\n\xff\nline"
HAND_MADE = (
    b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n'
    + b'{"type":"attachment","length":%d,"filename":"a.bin"}\n' % len(BINARY)
    + BINARY
    + b'\n{"type":"event"}\n'
    + b'{"message":"hi"}\n'
    + b'{"type":"client_report","length":2}\n'
    + b"{}"
)


def test_dsn_is_accepted_by_sentry_sdk(sentry_ingest: SentryIngest) -> None:
    """The DSN has a 32 hex digit key, 127.0.0.1, the ephemeral port and the project id."""
    assert re.fullmatch(
        rf"http://[0-9a-f]{{32}}@127\.0\.0\.1:{sentry_ingest.port}/1", sentry_ingest.dsn
    )
    assert sentry_ingest.port > 0
    assert "127.0.0.1" == sentry_sdk.utils.Dsn(sentry_ingest.dsn).host.split(":")[0]


@pytest.mark.parametrize(
    ("options", "encoding"),
    [
        # brotli is installed (dev dependency), so the SDK's default is br, not gzip.
        ({}, "br"),
        ({"_experiments": {"transport_compression_algo": "gzip"}}, "gzip"),
        ({"_experiments": {"transport_compression_algo": "br"}}, "br"),
        # A level alone means gzip; level 0 means no compression and no header at all.
        ({"_experiments": {"transport_compression_level": 1}}, "gzip"),
        ({"_experiments": {"transport_compression_level": 0}}, None),
    ],
    ids=["default", "gzip", "br", "level-1", "uncompressed"],
)
def test_real_transport_events_and_transactions(
    sentry_ingest: SentryIngest,
    init_sentry: InitSentry,
    options: dict[str, Any],
    encoding: str | None,
) -> None:
    """Messages, exceptions and transactions sent by the real HttpTransport all parse."""
    init_sentry(traces_sample_rate=1.0, **options)

    message_id = sentry_sdk.capture_message("meeting.created")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        exception_id = sentry_sdk.capture_exception()
    with sentry_sdk.start_transaction(name="GET /meetings", op="http.server"):
        pass
    sentry_sdk.flush(timeout=5)

    events = sentry_ingest.wait_for_events(n=2)
    transactions = sentry_ingest.wait_for_transactions(n=1)
    assert [message_id, exception_id] == [event["event_id"] for event in events]
    assert "meeting.created" == events[0]["message"]
    assert "ZeroDivisionError" == events[1]["exception"]["values"][-1]["type"]
    assert "GET /meetings" == transactions[0]["transaction"]
    assert {encoding} == {r.headers.get("content-encoding") for r in sentry_ingest.requests}
    assert {200} == {r.status for r in sentry_ingest.requests}
    assert [] == sentry_ingest.errors
    assert message_id == sentry_ingest.envelopes[0].headers["event_id"]


def test_sentry_logs_are_flattened(sentry_ingest: SentryIngest, init_sentry: InitSentry) -> None:
    """Sentry Logs items ({"items": [...]}) become one list of log records."""
    init_sentry(enable_logs=True)

    sentry_logger.info("meeting {meeting_id} created", meeting_id=7)
    sentry_logger.warning("transcription slow")
    sentry_sdk.flush(timeout=5)

    logs = sentry_ingest.wait_for_logs(n=2)
    assert ["meeting 7 created", "transcription slow"] == [log["body"] for log in logs]
    assert ["info", "warn"] == [log["level"] for log in logs]
    assert "log" == sentry_ingest.items("log")[0].type


def test_raw_bodies_hold_every_decoded_byte(
    sentry_ingest: SentryIngest, init_sentry: InitSentry
) -> None:
    """raw_bodies are decoded, so a canary is findable (and its absence provable)."""
    init_sentry()

    sentry_sdk.capture_message("canary-5f2c9e")
    sentry_sdk.flush(timeout=5)
    sentry_ingest.wait_for_events()

    assert "br" == sentry_ingest.requests[0].headers["content-encoding"]
    assert [True] == [b"canary-5f2c9e" in body for body in sentry_ingest.raw_bodies]
    assert not any(b"never-sent" in body for body in sentry_ingest.raw_bodies)


def test_parse_envelope_with_length_and_binary_payload() -> None:
    """length is honoured byte-exactly; without it the payload runs to the newline."""
    envelope = parse_envelope(HAND_MADE)

    assert (
        Envelope(
            headers={"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"},
            items=[
                Item({"type": "attachment", "length": 9, "filename": "a.bin"}, BINARY, None),
                Item({"type": "event"}, b'{"message":"hi"}', {"message": "hi"}),
                Item({"type": "client_report", "length": 2}, b"{}", {}),
            ],
            endpoint="envelope",
        )
        == envelope
    )


def test_parse_envelope_tolerates_trailing_newlines_and_no_items() -> None:
    assert Envelope({}, [], "envelope") == parse_envelope(b"{}")
    assert Envelope({}, [], "envelope") == parse_envelope(b"{}\n\n")
    assert [b""] == [item.payload for item in parse_envelope(b'{}\n{"type":"x"}\n').items]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "envelope header is not JSON"),
        (b"[]\n", "envelope header is not a JSON object"),
        (b'{}\n{"length":1}\nx', "item 0 has no string 'type'"),
        (b'{}\n{"type":"attachment","length":5}\nabc', "declares length 5 but only 3 bytes"),
        (b'{}\n{"type":"attachment","length":"3"}\nabc', "item 0 has a bad 'length'"),
        (b'{}\n{"type":"event"}\nnot json', r"item 0 \(event\) is not JSON"),
    ],
)
def test_parse_envelope_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_envelope(data)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda body: body),
        ("identity", lambda body: body),
        ("gzip", gzip.compress),
        ("br", brotli.compress),
    ],
)
def test_hand_made_envelope_over_http(
    sentry_ingest: SentryIngest, encoding: str | None, encode: Callable[[bytes], bytes]
) -> None:
    """Every supported Content-Encoding is undone before parsing; the answer holds the id."""
    headers = {"Content-Encoding": encoding} if encoding else {}

    status, _, answer = post(sentry_ingest, encode(HAND_MADE), headers=headers)

    assert (200, {"id": "9ec79c33ec9942ab8353589fcb2e04dc"}) == (status, answer)
    assert [parse_envelope(HAND_MADE)] == sentry_ingest.envelopes
    assert [HAND_MADE] == sentry_ingest.raw_bodies
    assert [{"message": "hi"}] == sentry_ingest.events
    assert [BINARY] == [item.payload for item in sentry_ingest.items("attachment")]


def test_legacy_store_endpoint(sentry_ingest: SentryIngest) -> None:
    event = {"event_id": "a" * 32, "message": "stored"}

    status, _, answer = post(sentry_ingest, json.dumps(event).encode(), path="/api/1/store/")

    assert (200, {"id": "a" * 32}) == (status, answer)
    assert [event] == sentry_ingest.events
    assert "store" == sentry_ingest.envelopes[0].endpoint


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "detail"),
    [
        ("/api/1/envelope/", {"X-Sentry-Auth": "Sentry sentry_key=0"}, b"{}", 401, "sentry_key"),
        ("/api/2/envelope/", {}, b"{}", 404, "no such route or project"),
        ("/api/1/events/", {}, b"{}", 404, "no such route or project"),
        ("/api/1/envelope/", {"Content-Encoding": "gzip"}, b"nope", 400, "corrupt gzip"),
        ("/api/1/envelope/", {"Content-Encoding": "br"}, b"nope", 400, "corrupt brotli"),
        ("/api/1/envelope/", {"Content-Encoding": "zstd"}, b"{}", 400, "unsupported"),
        ("/api/1/envelope/", {}, b'{}\n{"type":"event"}\n{', 400, "is not JSON"),
    ],
)
def test_rejects_what_sentry_would_reject(
    sentry_ingest: SentryIngest,
    path: str,
    headers: dict[str, str],
    body: bytes,
    status: int,
    detail: str,
) -> None:
    """Protocol errors are answered, recorded as requests and listed in errors."""
    answer_status, _, answer = post(sentry_ingest, body, path=path, headers=headers)

    assert status == answer_status
    assert detail in answer["detail"]
    assert [status] == [request.status for request in sentry_ingest.requests]
    assert [] == sentry_ingest.envelopes
    assert 1 == len(sentry_ingest.errors)
    assert f"-> {status}: " in sentry_ingest.errors[0]


def test_sentry_key_in_query_string_is_accepted(sentry_ingest: SentryIngest) -> None:
    path = f"/api/1/envelope/?sentry_key={sentry_ingest.public_key}&sentry_version=7"

    status, _, _ = post(sentry_ingest, b"{}", path=path, headers={"X-Sentry-Auth": ""})

    assert 200 == status


def test_respond_with_status_and_headers(sentry_ingest: SentryIngest) -> None:
    """The chosen status and headers are what the client sees; the request is still recorded."""
    sentry_ingest.respond_with(status=429, headers={"Retry-After": "1"})

    status, headers, answer = post(sentry_ingest, HAND_MADE)

    assert (429, "1") == (status, headers["Retry-After"])
    assert {"detail": "SentryIngest.respond_with(429)"} == answer
    assert [{"message": "hi"}] == sentry_ingest.events
    assert [] == sentry_ingest.errors

    sentry_ingest.respond_with()
    assert 200 == post(sentry_ingest, HAND_MADE)[0]


def test_constructor_sets_the_answer() -> None:
    with SentryIngest(status=503) as ingest:
        assert 503 == post(ingest, b"{}")[0]


def test_sdk_honours_429_retry_after(sentry_ingest: SentryIngest, init_sentry: InitSentry) -> None:
    """After a 429 with Retry-After the real transport drops events instead of sending them."""
    init_sentry()
    sentry_ingest.respond_with(status=429, headers={"Retry-After": "60"})

    sentry_sdk.capture_message("first")
    sentry_sdk.flush(timeout=5)
    sentry_ingest.wait_for_events()
    sentry_sdk.capture_message("second")
    sentry_sdk.flush(timeout=5)

    assert ["first"] == [event["message"] for event in sentry_ingest.events]
    assert [429] == [request.status for request in sentry_ingest.requests]


def test_delay_holds_the_answer_and_stop_cuts_it_short() -> None:
    """A client with a short timeout gives up on a slow ingest; stop() does not hang on it."""
    ingest = SentryIngest(delay=30).start()

    with pytest.raises(TimeoutError):
        post(ingest, b"{}", timeout=0.2)
    ingest.stop()

    assert 1 == len(ingest.requests)


def test_wait_for_helpers_explain_a_timeout(sentry_ingest: SentryIngest) -> None:
    post(sentry_ingest, b'{}\n{"type":"transaction"}\n{}')

    with pytest.raises(AssertionError) as info:
        sentry_ingest.wait_for_events(n=1, timeout=0.01)

    assert (
        "expected at least 1 'event' item(s) within 0.01s, "
        "got 1 request(s) with item types ['transaction']"
    ) == str(info.value)


def test_wait_for_logs_explains_a_timeout_with_errors(sentry_ingest: SentryIngest) -> None:
    post(sentry_ingest, b"not an envelope")

    expected = r"1 log record\(s\) .* protocol errors \[.POST /api/1/envelope/ -> 400: envelope"
    with pytest.raises(AssertionError, match=expected):
        sentry_ingest.wait_for_logs(timeout=0.01)


def test_wait_wakes_when_a_request_arrives(sentry_ingest: SentryIngest) -> None:
    sender = threading.Thread(target=post, args=(sentry_ingest, HAND_MADE))
    sender.start()

    assert sentry_ingest.wait(lambda received: len(received.events) == 1, timeout=5)
    sender.join(5)
    assert not sentry_ingest.wait(lambda received: len(received.events) == 2, timeout=0.01)


def test_clear_forgets_everything(sentry_ingest: SentryIngest) -> None:
    post(sentry_ingest, HAND_MADE)
    post(sentry_ingest, b"broken")

    sentry_ingest.clear()

    assert ([], [], [], []) == (
        sentry_ingest.requests,
        sentry_ingest.raw_bodies,
        sentry_ingest.envelopes,
        sentry_ingest.errors,
    )


def test_life_cycle() -> None:
    ingest = SentryIngest(project_id=42)
    with pytest.raises(RuntimeError, match="not started"):
        _ = ingest.dsn

    with ingest:
        assert ingest.dsn.endswith("/42")
        with pytest.raises(RuntimeError, match="already started"):
            ingest.start()
    ingest.stop()  # idempotent

    with ingest:  # restartable
        assert 200 == post(ingest, b"{}", path="/api/42/envelope/")[0]


def test_never_writes_to_stderr(
    capfd: pytest.CaptureFixture[str], sentry_ingest: SentryIngest, init_sentry: InitSentry
) -> None:
    init_sentry()
    sentry_sdk.capture_message("quiet")
    sentry_sdk.flush(timeout=5)
    post(sentry_ingest, b"broken")
    post(sentry_ingest, b"{}", path="/nowhere")

    assert ("", "") == tuple(capfd.readouterr())
