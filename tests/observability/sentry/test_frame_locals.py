"""Frame locals of a failing request, as the local ingest receives them.

Flask's own frames hold the request (``ctx``, ``req``, the WSGI ``environ``): their URL's
query and raw headers never arrive, only method and path (the request itself is in the
event's ``request``, under the PII rules). A view's local holding the request body is
the body: without ``MINA_SEND_PII=1`` it does not arrive, as the body does not.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
import sentry_sdk

import mina
from mina.redaction import REDACTED
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

PASSWORD = "hunter2Zq9xWv"
KEY = "sk-proj-" + "Ab12Cd34Ef56" * 3
QUERY = f"next=%2Fcb%3Fpassword%3D{PASSWORD}%26api_key%3D{KEY}&q=victim%40example.org&page=2"
PRIVATE = "my private notes about the merger"


@pytest.fixture
def app_for(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> Callable[..., flask.Flask]:
    """Mina's app sending to the local ingest, with routes that fail in several ways."""

    def build(*, send_pii: bool = False) -> flask.Flask:
        mina_logging(send_pii=send_pii)
        app = mina.create_app(
            {
                "SENTRY_DSN": sentry_ingest.dsn,
                "SENTRY_TRACES_SAMPLE_RATE": "0",
                "MINA_SEND_PII": "1" if send_pii else "0",
                "MINA_DATABASE": str(tmp_path / "locals.sqlite3"),
            }
        )

        @app.post("/api/notes")
        def notes() -> str:
            data = flask.request.get_json()
            comment = data["comment"]
            size = len(comment)
            raise ValueError(f"note of {size} characters rejected")

        @app.post("/api/form")
        def form() -> str:
            fields = flask.request.form
            title = fields["title"]
            raise ValueError(f"form title of {len(title)} characters rejected")

        @app.get("/api/called")
        def called() -> str:
            # A call that succeeds, to a loopback server: the SDK records it as a
            # breadcrumb with its URL and query.
            port = flask.current_app.config["UPSTREAM_PORT"]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", f"/v1/items?{QUERY}")
            status = connection.getresponse().status
            connection.close()
            raise ValueError(f"upstream answered {status}")

        @app.get("/api/upstream")
        def upstream() -> str:
            # A call to a closed port on loopback: it fails inside http.client, whose
            # frames hold the request line and headers.
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            credential = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
            connection.request(
                "GET", f"/v1/items?{QUERY}", headers={"Authorization": f"Basic {credential}"}
            )
            return "unreachable"

        return app

    return build


def frames_of(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for exc in event["exception"]["values"] for f in exc["stacktrace"]["frames"]]


def vars_named(event: dict[str, Any], name: str) -> list[Any]:
    return [f["vars"][name] for f in frames_of(event) if name in f.get("vars", {})]


@pytest.mark.parametrize("send_pii", [False, True], ids=["pii-off", "pii-on"])
def test_flask_request_objects_lose_their_query(
    app_for: Callable[..., flask.Flask], sentry_ingest: SentryIngest, send_pii: bool
) -> None:
    app = app_for(send_pii=send_pii)

    app.test_client().post(
        f"/api/notes?{QUERY}",
        json={"comment": PRIVATE},
        headers={"Referer": f"http://localhost/login?{QUERY}"},
    )
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    wire = b"".join(sentry_ingest.raw_bodies)
    assert [] == [s for s in (PASSWORD, KEY) if s.encode() in wire]
    assert [f"<RequestContext 'http://localhost/api/notes?{REDACTED}' [POST] of mina>"] == (
        vars_named(event, "ctx")
    )
    assert [f"<Request 'http://localhost/api/notes?{REDACTED}' [POST]>"] == vars_named(event, "req")
    [environ] = vars_named(event, "environ")
    assert "'/api/notes'" == environ["PATH_INFO"]
    assert "'POST'" == environ["REQUEST_METHOD"]
    assert {REDACTED} == {environ[k] for k in ("QUERY_STRING", "REQUEST_URI") if k in environ}
    # The query itself arrives once, in the request, with only the secrets (and, without
    # PII, the e-mail) gone.
    email = "victim%40example.org" if send_pii else REDACTED
    query = f"next=%2Fcb%3Fpassword%3D{REDACTED}%26api_key%3D{REDACTED}&q={email}&page=2"
    assert query == event["request"]["query_string"]
    # So does a header carrying a URL.
    assert f"http://localhost/login?{query}" == event["request"]["headers"]["Referer"]
    assert send_pii == (b"victim" in wire)


def test_a_local_holding_the_json_body_is_the_body(
    app_for: Callable[..., flask.Flask], sentry_ingest: SentryIngest
) -> None:
    app = app_for()

    app.test_client().post("/api/notes", json={"comment": PRIVATE})
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    assert PRIVATE.encode() not in b"".join(sentry_ingest.raw_bodies)
    [notes] = [f for f in frames_of(event) if f["function"] == "notes"]
    # The body and a string taken out of it go; a number computed from it stays.
    assert {"data": REDACTED, "comment": REDACTED, "size": str(len(PRIVATE))} == notes["vars"]


def test_a_local_holding_the_form_is_the_body(
    app_for: Callable[..., flask.Flask], sentry_ingest: SentryIngest
) -> None:
    app = app_for()

    app.test_client().post("/api/form", data={"title": PRIVATE})
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    assert PRIVATE.encode() not in b"".join(sentry_ingest.raw_bodies)
    [form] = [f for f in frames_of(event) if f["function"] == "form"]
    assert {"fields": REDACTED, "title": REDACTED} == form["vars"]


def test_with_pii_the_body_local_is_sent_redacted(
    app_for: Callable[..., flask.Flask], sentry_ingest: SentryIngest
) -> None:
    app = app_for(send_pii=True)

    app.test_client().post("/api/notes", json={"comment": PRIVATE, "password": PASSWORD})
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    [notes] = [f for f in frames_of(event) if f["function"] == "notes"]
    assert {"comment": repr(PRIVATE), "password": REDACTED} == notes["vars"]["data"]
    assert repr(PRIVATE) == notes["vars"]["comment"]


def test_http_client_frames_lose_only_the_credential_and_the_query(
    app_for: Callable[..., flask.Flask], sentry_ingest: SentryIngest
) -> None:
    app = app_for()

    response = app.test_client().get("/api/upstream")
    sentry_sdk.flush(timeout=5)

    assert 500 == response.status_code
    [event] = sentry_ingest.wait_for_events()
    wire = b"".join(sentry_ingest.raw_bodies)
    credential = base64.b64encode(f"ada:{PASSWORD}".encode())
    assert [] == [s for s in (PASSWORD.encode(), KEY.encode(), credential) if s in wire]
    # The request bytes http.client built: the header names and the other headers stay.
    sent = [v for v in vars_named(event, "msg") if isinstance(v, str) and "HTTP/1.1" in v]
    assert sent, json.dumps(frames_of(event))[:2000]
    assert f"\\r\\nAuthorization: Basic {REDACTED}\\r\\n" in sent[0]
    assert "\\r\\nAccept-Encoding: identity\\r\\n" in sent[0]
    assert f"%3Fpassword%3D{REDACTED}%26api_key%3D{REDACTED}" in sent[0]


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads Sentry, not this server's log."""


def test_breadcrumb_of_an_outgoing_call_loses_only_the_secrets(
    app_for: Callable[..., flask.Flask], sentry_ingest: SentryIngest
) -> None:
    app = app_for()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    app.config["UPSTREAM_PORT"] = server.server_port
    try:
        response = app.test_client().get("/api/called")
    finally:
        server.shutdown()
        thread.join(timeout=10)
    sentry_sdk.flush(timeout=5)

    assert 500 == response.status_code
    [event] = sentry_ingest.wait_for_events()
    wire = b"".join(sentry_ingest.raw_bodies)
    assert [] == [s for s in (PASSWORD, KEY, "victim") if s.encode() in wire]
    [crumb] = [c for c in event["breadcrumbs"]["values"] if c.get("category") == "httplib"]
    assert (
        f"next=%2Fcb%3Fpassword%3D{REDACTED}%26api_key%3D{REDACTED}&q={REDACTED}&page=2"
        == crumb["data"]["http.query"]
    )
