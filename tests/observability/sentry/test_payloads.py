"""Sentry payloads through the redactor: events, breadcrumbs, logs, the real SDK."""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Callable
from typing import Any

import sentry_sdk
from hypothesis import given, settings
from hypothesis import strategies as st
from sentry_sdk._types import AnnotatedValue

from mina.observability.sentry.payloads import (
    redact_breadcrumb,
    redact_sentry_event,
    redact_sentry_log,
)
from mina.redaction import REDACTED, Redactor
from mina.testing import SentryIngest


class TestAnnotatedValue:
    def test_annotated_value(self, redactor: Redactor) -> None:
        """Sentry's AnnotatedValue keeps its metadata, its value is redacted."""
        value = AnnotatedValue("password=hunter2", {"rem": []})

        redacted = redactor.redact(value)

        assert AnnotatedValue(f"password={REDACTED}", {"rem": []}) == redacted


class TestArgv:
    def test_sentry_sys_argv(self, redactor: Redactor) -> None:
        """Sentry's extra["sys.argv"] loses the secret and keeps the rest."""
        event = {"extra": {"sys.argv": ["gunicorn", "--api-key", "k-1", "-w", "2"]}}

        result = redact_sentry_event(redactor, event)

        assert ["gunicorn", "--api-key", REDACTED, "-w", "2"] == result["extra"]["sys.argv"]

    def test_not_in_source_lines(self, redactor: Redactor) -> None:
        """Code keeps its flags (only hard-coded literals under secret names go)."""
        line = '    cmd = f"mina --password {pw}"'
        event = {"stacktrace": {"frames": [{"context_line": line}]}}

        assert (
            line == redact_sentry_event(redactor, event)["stacktrace"]["frames"][0]["context_line"]
        )


def realistic_event() -> dict[str, Any]:
    """A Sentry error event as the SDK hands it to before_send (serialised)."""
    return {
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "timestamp": "2026-11-29T05:00:00.000000Z",
        "platform": "python",
        "level": "error",
        "logger": "mina.observability.flask",
        "release": "mina@0.1.0",
        "environment": "production",
        "server_name": "web-1",
        "sdk": {"name": "sentry.python.flask", "version": "2.75.0"},
        "modules": {"pyjwt": "2.8.0", "django-otp": "1.0"},
        "logentry": {
            "message": "login failed for %s with token=%s",
            "params": ["bob", "tok-123456"],
            "formatted": "login failed for bob with token=tok-123456",
        },
        "message": "password=hunter2",
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "module": None,
                    "value": "bad Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOjF9.sig123",
                    "mechanism": {"type": "flask", "handled": False},
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "mina/web.py",
                                "abs_path": "/app/mina/web.py",
                                "function": "login",
                                "module": "mina.observability.flask",
                                "lineno": 42,
                                "pre_context": ["def login():", "    # the secret path"],
                                "context_line": '    password = request.json["password"]',
                                "post_context": ["    token=issue(password)"],
                                "vars": {
                                    "password": "'hunter2'",
                                    "api_key": "'k-live-9'",
                                    "meeting_id": "'m-77'",
                                    "url": "'https://x/?token=urltok&page=2'",
                                    "db": "'postgres://mina:dbpw@db/mina'",
                                },
                                "in_app": True,
                            }
                        ]
                    },
                }
            ]
        },
        "request": {
            "url": "https://mina.example.com/api/login",
            "method": "POST",
            "query_string": "next=/home&access_token=qtok",
            "headers": {
                "Authorization": "Bearer headtok",
                "X-Api-Key": "headkey",
                "Cookie": "session=cookietok",
                "User-Agent": "curl/8",
                "X-Request-ID": "r-1",
            },
            "cookies": {"session": "cookietok"},
            "data": {"username": "bob", "password": "formpw", "remember": True},
            "env": {"REMOTE_ADDR": "203.0.113.9", "SERVER_NAME": "mina"},
        },
        "user": {
            "id": "42",
            "username": "bob",
            "email": "bob@example.com",
            "ip_address": "203.0.113.9",
        },
        "tags": {"meeting_id": "m-77", "auth": "tagtok"},
        "contexts": {
            "trace": {
                "trace_id": "771a43a4192642f0b136d5159a501700",
                "span_id": "a1b2c3d4e5f60718",
            },
            "runtime": {"name": "CPython", "version": "3.11.9"},
        },
        "extra": {"client_secret": "extrasecret", "duration_ms": 12},
        "breadcrumbs": {
            "values": [
                {
                    "type": "log",
                    "category": "mina.observability.flask",
                    "message": "calling https://api?api_key=crumbkey",
                    "data": {"refresh_token": "crumbtok", "meeting_id": "m-77"},
                    "timestamp": "2026-11-29T04:59:59Z",
                }
            ]
        },
        "spans": [
            {
                "op": "db",
                "description": "UPDATE users SET password='sqlpw' WHERE id=42",
                "data": {"db.params": ["bob", "sqlparam"], "db.system": "sqlite"},
                "span_id": "b1b2c3d4e5f60718",
                "trace_id": "771a43a4192642f0b136d5159a501700",
            }
        ],
        "transaction": "/api/login",
    }


SECRETS = [
    "tok-123456",
    "hunter2",
    "eyJhbGciOiJIUzI1NiJ9",
    "k-live-9",
    "urltok",
    "dbpw",
    "qtok",
    "headtok",
    "headkey",
    "cookietok",
    "formpw",
    "tagtok",
    "extrasecret",
    "crumbkey",
    "crumbtok",
    "sqlpw",
    "sqlparam",
]


class TestSentry:
    def test_event(self, redactor: Redactor) -> None:
        """No secret survives; Sentry's structure and harmless context do."""
        event = realistic_event()
        original = json.dumps(event)

        result = redact_sentry_event(redactor, event)
        dumped = json.dumps(result, default=str)

        assert [] == [s for s in SECRETS if s in dumped]
        assert original == json.dumps(event)  # the input is not modified
        for key in ("event_id", "timestamp", "sdk", "modules", "release", "environment"):
            assert event[key] == result[key]
        assert event["contexts"] == result["contexts"]
        frame = result["exception"]["values"][0]["stacktrace"]["frames"][0]
        assert '    password = request.json["password"]' == frame["context_line"]
        assert ["    token=issue(password)"] == frame["post_context"]
        assert "'m-77'" == frame["vars"]["meeting_id"]
        assert ("mina/web.py", "login", 42) == (
            frame["filename"],
            frame["function"],
            frame["lineno"],
        )
        assert {"id": "42", "username": "bob"} == result["user"]
        assert "REMOTE_ADDR" not in result["request"]["env"]
        assert "curl/8" == result["request"]["headers"]["User-Agent"]
        assert "/api/login" == result["transaction"]
        assert "m-77" == result["tags"]["meeting_id"]
        assert 12 == result["extra"]["duration_ms"]
        assert "login failed for %s with token=%s" == result["logentry"]["message"]

    def test_event_with_pii(self) -> None:
        """With send_pii the user's e-mail and IP stay; secrets still go."""
        result = redact_sentry_event(Redactor(send_pii=True), realistic_event())

        assert "bob@example.com" == result["user"]["email"]
        assert "203.0.113.9" == result["user"]["ip_address"]
        assert "203.0.113.9" == result["request"]["env"]["REMOTE_ADDR"]
        assert [] == [s for s in SECRETS if s in json.dumps(result, default=str)]

    def test_code_lines_keep_code_but_not_credentials(self, redactor: Redactor) -> None:
        """Source lines lose only hard-coded secrets, never code."""
        key = "AKIAIOSFODNN7EXAMPLE"
        event = {
            "stacktrace": {
                "frames": [
                    {
                        "context_line": f'    client(key="{key}", password=request.args["pw"])',
                        "pre_context": [
                            '    url = f"postgres://{user}:{pw}@{host}"',
                            '    body = {"password": password, "token": "hard-coded"}',
                            "def login(password: str, token: str = 'x') -> None:",
                            '    password = request.json["password"]',
                        ],
                    }
                ]
            }
        }

        frame = redact_sentry_event(redactor, event)["stacktrace"]["frames"][0]

        assert f'    client(key="{REDACTED}", password=request.args["pw"])' == frame["context_line"]
        assert [
            '    url = f"postgres://{user}:{pw}@{host}"',
            f'    body = {{"password": password, "token": "{REDACTED}"}}',
            "def login(password: str, token: str = 'x') -> None:",
            '    password = request.json["password"]',
        ] == frame["pre_context"]

    def test_breadcrumb(self, redactor: Redactor) -> None:
        """Breadcrumb message and data are redacted."""
        crumb = {
            "category": "httplib",
            "message": "GET /x?token=t1",
            "data": {"url": "https://h/?api_key=t2", "Authorization": "t3", "status_code": 200},
        }

        assert {
            "category": "httplib",
            "message": f"GET /x?token={REDACTED}",
            "data": {
                "url": f"https://h/?api_key={REDACTED}",
                "Authorization": REDACTED,
                "status_code": 200,
            },
        } == redact_breadcrumb(redactor, crumb)

    def test_log(self, redactor: Redactor) -> None:
        """Sentry Logs: body and attributes (plain or typed) are redacted, shapes kept."""
        log = {
            "severity_text": "info",
            "body": "login bob password=hunter2",
            "attributes": {
                "sentry.message.parameter.token": "t1",
                "api_key": {"value": "t2", "type": "string"},
                "meeting_id": {"value": "m-1", "type": "string"},
                "count": {"value": 3, "type": "integer"},
                "pin": {"value": 1234, "type": "integer"},
                "sentry.message.parameter.0": {"value": "bob", "type": "string"},
                "sentry.message.parameter.1": {"value": "hunter2", "type": "string"},
            },
            "trace_id": "771a43a4192642f0b136d5159a501700",
        }

        assert {
            "severity_text": "info",
            "body": f"login bob password={REDACTED}",
            "attributes": {
                "sentry.message.parameter.token": REDACTED,
                "api_key": {"value": REDACTED, "type": "string"},
                "meeting_id": {"value": "m-1", "type": "string"},
                "count": {"value": 3, "type": "integer"},
                "pin": {"value": REDACTED, "type": "string"},
                "sentry.message.parameter.0": {"value": "bob", "type": "string"},
                "sentry.message.parameter.1": {"value": REDACTED, "type": "string"},
            },
            "trace_id": "771a43a4192642f0b136d5159a501700",
        } == redact_sentry_log(redactor, log)


canaries = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40).map(
    lambda s: "CANARY" + s
)


def _sentry_slots(event: dict[str, Any], canary: str) -> list[Callable[[], None]]:
    """Ways to put *canary* into the user-controlled parts of a Sentry event."""
    exc = event["exception"]["values"][0]
    frame = exc["stacktrace"]["frames"][0]
    request = event["request"]
    return [
        lambda: exc.update(value=f"failed: token={canary}"),
        lambda: frame["vars"].update(refresh_token=repr(canary)),
        lambda: frame["vars"].update(body=repr({"password": canary})),
        lambda: request.update(query_string=f"a=1&api_key={canary}"),
        lambda: request["headers"].update({"X-Auth-Token": canary}),
        lambda: request.update(data=json.dumps({"secret": canary})),
        lambda: request["cookies"].update(theme=canary),
        lambda: event["breadcrumbs"]["values"][0]["data"].update(url=f"https://h?token={canary}"),
        lambda: event["extra"].update(creds={"private_key": canary}),
        lambda: event["tags"].update(session_id=canary),
        lambda: event["contexts"].update(db={"dsn": f"postgres://u:{canary}@h/db"}),
        lambda: event["spans"][0]["data"]["db.params"].append(canary),
        lambda: event["user"].update(email=f"{canary}@example.com"),
        lambda: event["logentry"].update(formatted=f"login with Bearer {canary}"),
    ]


def test_real_sdk_event_through_the_hooks(sentry_ingest: SentryIngest) -> None:
    """The real sentry-sdk, its serializer and transport: nothing secret reaches the wire."""
    # Made at run time, so they are not in this file's source lines that Sentry sends, and
    # kept under a sensitive name, as this test's own frame (and its locals) is sent too.
    secret = {name: f"CANARY{secrets.token_hex(8)}" for name in ("pw", "sid", "ctx", "crumb", "k")}
    redactor = Redactor()
    sentry_sdk.init(
        dsn=sentry_ingest.dsn,
        default_integrations=False,
        auto_enabling_integrations=False,
        http_proxy="",
        include_local_variables=True,
        before_send=lambda event, hint: redact_sentry_event(redactor, event),
        before_breadcrumb=lambda crumb, hint: redact_breadcrumb(redactor, crumb),
    )
    sentry_sdk.set_user({"id": "42", "username": "bob", "email": "bob@example.com"})
    sentry_sdk.set_tag("meeting_id", "m-77")
    sentry_sdk.set_context("upstream", {"url": f"https://u:{secret['ctx']}@api/x", "region": "eu"})
    sentry_sdk.add_breadcrumb(
        message=f"GET /x?token={secret['crumb']}", data={"api_key": secret["k"]}
    )

    def login(password: str) -> None:
        state = {"sessionid": secret["sid"], "meeting_id": "m-77"}
        raise ValueError(f"login failed, password={password} session={state['sessionid']}")

    try:
        login(secret["pw"])
    except ValueError:
        sentry_sdk.capture_exception()
    sentry_sdk.get_client().flush(timeout=5)

    [event] = sentry_ingest.wait_for_events(1)
    wire = b"".join(sentry_ingest.raw_bodies)

    assert [] == re.findall(rb"CANARY\w*", wire)
    assert b"bob@example.com" not in wire
    assert {"id": "42", "username": "bob"} == event["user"]
    assert "m-77" == event["tags"]["meeting_id"]
    assert "eu" == event["contexts"]["upstream"]["region"]
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert "raise ValueError" in frame["context_line"]
    assert REDACTED == frame["vars"]["password"]
    assert {"sessionid": REDACTED, "meeting_id": "'m-77'"} == frame["vars"]["state"]


@settings(max_examples=60, deadline=None)
@given(canary=canaries, slot=st.integers(min_value=0, max_value=13))
def test_canary_never_reaches_sentry(canary: str, slot: int) -> None:
    """A secret planted in any user-controlled part of a Sentry event never survives."""
    event = realistic_event()
    _sentry_slots(event, canary)[slot]()

    result = redact_sentry_event(Redactor(), event)

    assert canary not in json.dumps(result, default=str)
    assert "m-77" == result["tags"]["meeting_id"]


class TestRequestObjectsInFrames:
    def frame_vars(self, redactor: Redactor, variables: dict[str, Any]) -> Any:
        event = {"stacktrace": {"frames": [{"function": "f", "vars": variables}]}}
        return redact_sentry_event(redactor, event)["stacktrace"]["frames"][0]["vars"]

    def test_request_reprs_keep_method_and_path(self, redactor: Redactor) -> None:
        """Any request-like repr with a URL, at any of the first levels, loses its query."""
        variables = {
            "ctx": "<RequestContext 'http://localhost/api/x?q=ada' [GET] of mina>",
            "pending": ["<Request 'https://h/cb?state=abc#frag' [POST]>"],
            "plain": "<Request 'http://localhost/healthz' [HEAD]>",
            "other": "<Response 12 bytes [200 OK]>",
        }

        assert {
            "ctx": f"<RequestContext 'http://localhost/api/x?{REDACTED}' [GET] of mina>",
            "pending": [f"<Request 'https://h/cb?{REDACTED}' [POST]>"],
            "plain": "<Request 'http://localhost/healthz' [HEAD]>",
            "other": "<Response 12 bytes [200 OK]>",
        } == self.frame_vars(redactor, variables)

    def test_an_environ_keeps_only_its_structure(self, redactor: Redactor) -> None:
        """Told by two of its keys; anything else in it is replaced."""
        environ = {
            "REQUEST_METHOD": "'GET'",
            "PATH_INFO": "'/api/x'",
            "HTTP_USER_AGENT": "'curl/8'",
            "HTTP_X_CUSTOM": "'anything'",
        }

        assert {
            "environ": {
                "REQUEST_METHOD": "'GET'",
                "PATH_INFO": "'/api/x'",
                "HTTP_USER_AGENT": REDACTED,
                "HTTP_X_CUSTOM": REDACTED,
            }
        } == self.frame_vars(redactor, {"environ": environ})

    def test_a_dict_with_one_environ_key_is_not_an_environ(self, redactor: Redactor) -> None:
        variables = {"route": {"PATH_INFO": "'/api/x'", "owner": "'ada'"}}

        assert variables == self.frame_vars(redactor, variables)
