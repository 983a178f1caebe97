"""``mina sentry-check`` against a real local ingest: delivered, rejected, rate-limited,
unreachable, off, invalid; each with its exit code, never the DSN's key."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner, Result

from mina import cli
from mina.commands.sentry_check import ExitCode
from mina.settings import package_version
from mina.testing import SentryIngest
from tests.support import free_port

_ID = re.compile(r"\b[0-9a-f]{32}\b")


def check(monkeypatch: pytest.MonkeyPatch, dsn: str | None, *args: str) -> Result:
    """Run ``mina sentry-check`` in process with SENTRY_DSN=*dsn*."""
    if dsn is not None:
        monkeypatch.setenv("SENTRY_DSN", dsn)
    return CliRunner().invoke(cli.main, ["sentry-check", *args])


def head(ingest_url: str) -> list[str]:
    """The first three lines of every check that reaches the sending step."""
    return [
        "Configuration: valid.",
        f"Sentry: on, because SENTRY_DSN is set: ingest {ingest_url}, environment development,"
        f" release mina@{package_version()}.",
        "Sent a test message and a test exception; waiting up to 5s.",
    ]


def test_delivered_with_the_event_ids_that_arrived(
    monkeypatch: pytest.MonkeyPatch, sentry_ingest: SentryIngest
) -> None:
    result = check(monkeypatch, sentry_ingest.dsn, "--timeout", "5")

    events = sentry_ingest.wait_for_events(2)
    message, exception = events
    assert [
        *head(f"http://127.0.0.1:{sentry_ingest.port}/1"),
        f"message    {message['event_id']}  delivered (HTTP 200)",
        f"exception  {exception['event_id']}  delivered (HTTP 200)",
        "Result: delivered.",
    ] == result.stdout.splitlines()
    assert ExitCode.DELIVERED == result.exit_code
    assert "mina sentry-check: test message" == message["message"]
    assert "SentryCheckError" == exception["exception"]["values"][0]["type"]
    assert {"mina.check": "sentry-check"}.items() <= exception["tags"].items()
    assert sentry_ingest.public_key not in result.output


@pytest.mark.parametrize(
    ("status", "headers", "code", "text"),
    [
        (
            403,
            {"X-Sentry-Error": "event submission rejected with_reason: ProjectId"},
            ExitCode.REJECTED,
            "rejected (HTTP 403: event submission rejected with_reason: ProjectId)",
        ),
        (500, {}, ExitCode.REJECTED, "rejected (HTTP 500: SentryIngest.respond_with(500))"),
    ],
)
def test_rejected_with_status_and_reason(
    monkeypatch: pytest.MonkeyPatch,
    sentry_ingest: SentryIngest,
    status: int,
    headers: dict[str, str],
    code: ExitCode,
    text: str,
) -> None:
    sentry_ingest.respond_with(status, headers)

    result = check(monkeypatch, sentry_ingest.dsn, "--timeout", "5")

    ids = [event["event_id"] for event in sentry_ingest.events]
    assert [
        *head(f"http://127.0.0.1:{sentry_ingest.port}/1"),
        f"message    {ids[0]}  {text}",
        f"exception  {ids[1]}  {text}",
        "Result: rejected.",
    ] == result.stdout.splitlines()
    assert code == result.exit_code


def test_rate_limited(monkeypatch: pytest.MonkeyPatch, sentry_ingest: SentryIngest) -> None:
    sentry_ingest.respond_with(429, {"Retry-After": "60"})

    result = check(monkeypatch, sentry_ingest.dsn, "--timeout", "5")

    # The first answer is a 429; the SDK then holds the second event back itself.
    lines = result.stdout.splitlines()
    assert 1 == len(sentry_ingest.requests)
    sent = sentry_ingest.events[0]["event_id"]
    assert [
        f"message    {sent}  rate-limited (HTTP 429, retry after 60)",
        "Result: rate-limited.",
    ] == [lines[3], lines[5]]
    assert re.fullmatch(
        r"exception  [0-9a-f]{32}  rate-limited: not sent, Sentry asked to wait", lines[4]
    )
    assert ExitCode.RATE_LIMITED == result.exit_code


def test_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there

    result = check(monkeypatch, f"http://0123456789abcdef@127.0.0.1:{port}/1", "--timeout", "5")

    lines = result.stdout.splitlines()
    reason = (
        f"unreachable: HTTPConnection(host='127.0.0.1', port={port}):"
        " Failed to establish a new connection: [Errno 111] Connection refused"
    )
    assert head(f"http://127.0.0.1:{port}/1") == lines[:3]
    assert [f"message    {{id}}  {reason}", f"exception  {{id}}  {reason}"] == [
        _ID.sub("{id}", line) for line in lines[3:5]
    ]
    assert ["Result: unreachable."] == lines[5:]
    assert ExitCode.UNREACHABLE == result.exit_code
    assert "0123456789abcdef" not in result.output


def test_off_without_a_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    result = check(monkeypatch, None)
    assert [
        "Configuration: valid.",
        "Sentry: off, because SENTRY_DSN is not set. Set it to your project's DSN.",
    ] == result.stdout.splitlines()
    assert ExitCode.SENTRY_OFF == result.exit_code


def test_an_invalid_configuration_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    result = check(monkeypatch, "ftp://0123456789abcdef@example.org/1")
    assert [
        "Configuration: invalid: SENTRY_DSN='ftp://***@example.org/1' is invalid:"
        " Unsupported scheme 'ftp'"
    ] == result.stdout.splitlines()
    assert ExitCode.CONFIG_INVALID == result.exit_code


def test_help_documents_every_exit_code() -> None:
    result = CliRunner().invoke(cli.main, ["sentry-check", "--help"])
    for code in ExitCode:
        assert re.search(rf"^    {code.value}  ", result.stdout, re.MULTILINE), code


def test_as_a_real_process(sentry_ingest: SentryIngest) -> None:
    env = {**os.environ, "SENTRY_DSN": sentry_ingest.dsn}
    result = subprocess.run(
        [sys.executable, "-m", "mina", "sentry-check", "--timeout", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ids = [event["event_id"] for event in sentry_ingest.wait_for_events(2)]
    assert (0, "") == (result.returncode, result.stderr)
    assert [
        f"message    {ids[0]}  delivered (HTTP 200)",
        f"exception  {ids[1]}  delivered (HTTP 200)",
        "Result: delivered.",
    ] == result.stdout.splitlines()[3:]


def test_the_sdk_internals_the_recording_transport_overrides_are_still_there() -> None:
    # RecordingTransport overrides two private methods; an SDK that renames or reshapes
    # them must fail here, not make sentry-check report "no answer" for delivered events.
    from sentry_sdk.transport import HttpTransport

    def parameters(name: str) -> list[str]:
        return list(inspect.signature(getattr(HttpTransport, name)).parameters)

    assert ["self", "method", "endpoint_type", "body", "headers"] == parameters("_request")
    assert ["self", "body", "headers", "endpoint_type", "envelope"] == parameters("_send_request")
