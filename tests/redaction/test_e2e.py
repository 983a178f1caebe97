"""Redaction end to end: a failing Flask request full of secrets, both outputs, and Relay.

The secrets travel every way a real request carries them (query string, Authorization,
Cookie, X-Api-Key, JSON body, a local variable, the exception message, a log call, a
foreign logger) and must reach neither stdout nor any byte the local Sentry ingest
received. Sentry's own Relay, run with its default data-scrubbing config over what
arrived, must find nothing left to scrub but Mina's own markers.
"""

from __future__ import annotations

import http.client
import logging
import string
import threading
from collections.abc import Iterator
from typing import Any

import flask
import pytest
import sentry_relay
import sentry_sdk
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.serving import make_server

import mina
from mina.redaction import REDACTED
from mina.testing import CapturedLogs, SentryIngest
from mina.testing.plugin import PipelineFactory

#: Sentry's defaults for a new project: scrub data, default fields, IP addresses.
RELAY_CONFIG = sentry_relay.convert_datascrubbing_config(
    {
        "scrubData": True,
        "scrubDefaults": True,
        "scrubIpAddresses": True,
        "sensitiveFields": [],
        "excludeFields": [],
    }
)

canaries = st.text(string.ascii_letters + string.digits, min_size=16, max_size=40).map(
    lambda s: "Cy" + s
)


def sentry_app(ingest: SentryIngest, *, send_pii: bool) -> flask.Flask:
    """Mina's app sending every event and transaction to *ingest*."""
    return mina.create_app(
        {
            "SENTRY_DSN": ingest.dsn,
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "SENTRY_PROFILES_SAMPLE_RATE": "0",
            "MINA_SEND_PII": "1" if send_pii else "0",
        }
    )


def leaky_app(
    mina_logging: PipelineFactory, ingest: SentryIngest, *, send_pii: bool = False
) -> tuple[flask.Flask, CapturedLogs]:
    lines = mina_logging(send_pii=send_pii)
    app = sentry_app(ingest, send_pii=send_pii)

    @app.post("/api/leak")
    def leak() -> str:
        body = flask.request.get_json()
        db_password = body["password"]  # a frame local Sentry collects by default
        structlog.get_logger("mina.leak").info("login.attempt", body=body)
        logging.getLogger("vendor.sdk").warning("retrying with api_key=%s", db_password)
        raise ConnectionError(f"postgres://mina:{db_password}@db:5432/mina refused")

    return app, lines


def send(app: flask.Flask, canary: str) -> flask.Response:
    client = app.test_client()
    # Werkzeug's test client sends the cookies of its jar, not a Cookie header.
    client.set_cookie("session", canary)
    client.set_cookie("theme", "dark")
    return client.post(
        f"/api/leak?token={canary}&page=2",
        json={"password": canary, "user": "ada", "meeting_id": "keep-me-7"},
        headers={
            "Authorization": f"Bearer {canary}",
            "X-Api-Key": canary,
            "X-Request-ID": "leak-1",
        },
    )


@pytest.fixture
def ingest() -> Iterator[SentryIngest]:
    with SentryIngest() as started:
        yield started


def assert_nothing_leaked(canary: str, lines: CapturedLogs, ingest: SentryIngest) -> None:
    assert canary not in lines.text
    assert not [body for body in ingest.raw_bodies if canary.encode() in body]


def test_failing_request_leaks_nothing_and_keeps_context(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    canary = "CyCanary0123456789abcdef"
    app, lines = leaky_app(mina_logging, sentry_ingest)

    response = send(app, canary)
    sentry_sdk.flush(timeout=5)

    assert 500 == response.status_code
    [event] = sentry_ingest.wait_for_events()
    sentry_ingest.wait_for_transactions()
    assert_nothing_leaked(canary, lines, sentry_ingest)
    # What is not secret survives, so the event is still useful and groups.
    assert "ConnectionError" == event["exception"]["values"][0]["type"]
    assert (
        f"postgres://mina:{REDACTED}@db:5432/mina refused"
        == (event["exception"]["values"][0]["value"])
    )
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert "leak" == frame["function"]
    assert REDACTED in frame["vars"]["db_password"]
    assert "leak-1" == event["tags"]["request_id"]
    [attempt] = lines.events("login.attempt")
    assert {"password": REDACTED, "user": "ada", "meeting_id": "keep-me-7"} == (attempt["body"])
    assert "leak-1" == attempt["request_id"]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(canary=canaries)
def test_any_canary_leaks_nowhere(
    mina_logging: PipelineFactory, ingest: SentryIngest, canary: str
) -> None:
    app, lines = leaky_app(mina_logging, ingest)
    ingest.clear()

    send(app, canary)
    sentry_sdk.flush(timeout=5)

    ingest.wait_for_events()
    assert_nothing_leaked(canary, lines, ingest)


def _value_at(tree: Any, path: list[str]) -> Any:
    for part in path:
        tree = tree[int(part)] if isinstance(tree, list) else tree[part]
    return tree


def _scrubbed_paths(meta: Any, path: list[str]) -> Iterator[list[str]]:
    """Paths of the values Relay changed, read off its ``_meta`` annotations."""
    if not isinstance(meta, dict):
        return
    for key, child in meta.items():
        if key == "":
            if child.get("rem"):
                yield path
        else:
            yield from _scrubbed_paths(child, [*path, key])


def test_relay_finds_nothing_left_to_scrub(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    app, _ = leaky_app(mina_logging, sentry_ingest)
    send(app, "CyRelayCanary0123456789")
    sentry_sdk.flush(timeout=5)
    normalizer = sentry_relay.StoreNormalizer(project_id=1)

    received = [*sentry_ingest.wait_for_events(), *sentry_ingest.wait_for_transactions()]
    changed: list[tuple[str, Any]] = []
    markers = 0
    for item in received:
        normalized = normalizer.normalize_event(item)
        stripped = sentry_relay.pii_strip_event(RELAY_CONFIG, normalized)
        for path in _scrubbed_paths(stripped.get("_meta", {}), []):
            before = _value_at(normalized, path)
            if isinstance(before, str) and REDACTED in before:
                markers += 1
            else:
                changed.append((".".join(path), before))

    assert [] == changed
    assert markers > 0  # Relay did look: it re-filters values that hold Mina's marker


def _normalization_errors(meta: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
    """Where Relay's normaliser rejected a value (``invalid_data``...), from ``_meta``."""
    if not isinstance(meta, dict):
        return
    for key, child in meta.items():
        if key == "":
            for error in child.get("err", []):
                yield ".".join(path), error
        else:
            yield from _normalization_errors(child, [*path, key])


@pytest.mark.parametrize("send_pii", [False, True], ids=["pii-off", "pii-on"])
def test_relay_normalizes_every_payload_without_errors(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, send_pii: bool
) -> None:
    """Cookies keep their names (values redacted), so Relay finds every field well-formed."""
    app, _ = leaky_app(mina_logging, sentry_ingest, send_pii=send_pii)
    send(app, "CyRelayCanary0123456789")
    sentry_sdk.flush(timeout=5)
    normalizer = sentry_relay.StoreNormalizer(project_id=1)

    received = [*sentry_ingest.wait_for_events(), *sentry_ingest.wait_for_transactions()]
    normalized = [normalizer.normalize_event(item) for item in received]

    assert [] == [e for n in normalized for e in _normalization_errors(n.get("_meta"), [])]
    cookies = [n["request"].get("cookies") for n in normalized if "request" in n]
    assert [[["session", REDACTED], ["theme", REDACTED]]] * len(received) == cookies


#: The client's own address: loopback (nothing leaves the machine), yet distinct from the
#: server's 127.0.0.1, so any trace of it in what Sentry received is the client's.
CLIENT_IP = "127.0.0.7"


@pytest.mark.parametrize("send_pii", [False, True], ids=["pii-off", "pii-on"])
def test_client_address_reaches_sentry_only_with_pii(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, send_pii: bool
) -> None:
    """A real socket: its repr (``raddr=(ip, port)``) in a frame local, a breadcrumb and a
    context, and the WSGI environ, carry the client's address; without PII none arrives."""
    mina_logging(send_pii=send_pii)
    app = sentry_app(sentry_ingest, send_pii=send_pii)

    @app.get("/api/peer")
    def peer() -> str:
        sock = flask.request.environ["werkzeug.socket"]  # a frame local: its repr is sent
        peer = sock.getpeername()
        logging.getLogger("vendor.net").warning("slow peer %r on %r", peer, sock)
        sentry_sdk.set_context("connection", {"socket": repr(sock), "peer_address": peer})
        raise TimeoutError(f"peer {sock!r} too slow")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection(
            "127.0.0.1", server.server_port, timeout=10, source_address=(CLIENT_IP, 0)
        )
        connection.request("GET", "/api/peer")
        status = connection.getresponse().status
        connection.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    sentry_sdk.flush(timeout=5)

    assert 500 == status
    [event] = sentry_ingest.wait_for_events()
    wire = b"".join(sentry_ingest.raw_bodies)
    assert send_pii == (CLIENT_IP.encode() in wire)
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert "peer" == frame["function"]
    if not send_pii:
        assert f"raddr={REDACTED}>" in frame["vars"]["sock"]
        assert "127.0.0.1" in event["request"]["url"]  # the server's own address stays
