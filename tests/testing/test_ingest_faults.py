"""The local ingest's outage modes: hang, refuse (stop/start on one port), and what counts
as accepted."""

from __future__ import annotations

import gzip
import json
import socket
import urllib.error
import urllib.request

import pytest

from mina.testing import SentryIngest


def _post(ingest: SentryIngest, event_id: str, timeout: float = 2.0) -> int:
    envelope = (
        json.dumps({"event_id": event_id}).encode()
        + b"\n"
        + json.dumps({"type": "event"}).encode()
        + b"\n"
        + json.dumps({"event_id": event_id, "message": "m"}).encode()
        + b"\n"
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{ingest.port}/api/1/envelope/",
        data=gzip.compress(envelope),
        headers={
            "Content-Encoding": "gzip",
            "X-Sentry-Auth": f"Sentry sentry_key={ingest.public_key}, sentry_version=7",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_hang_reads_and_never_answers_nor_records(sentry_ingest: SentryIngest) -> None:
    sentry_ingest.respond_with(hang=True)

    with pytest.raises(TimeoutError):
        _post(sentry_ingest, "a" * 32, timeout=0.3)
    sentry_ingest.respond_with()
    status = _post(sentry_ingest, "b" * 32)

    assert (200, ["b" * 32]) == (status, [e["event_id"] for e in sentry_ingest.events])


def test_stop_refuses_and_start_serves_the_same_dsn_again(sentry_ingest: SentryIngest) -> None:
    dsn = sentry_ingest.dsn
    port = sentry_ingest.port
    sentry_ingest.stop()

    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass
    sentry_ingest.start()

    assert (dsn, 200) == (sentry_ingest.dsn, _post(sentry_ingest, "c" * 32))


def test_accepted_events_leave_out_envelopes_answered_with_an_error(
    sentry_ingest: SentryIngest,
) -> None:
    sentry_ingest.respond_with(500)
    first = _post(sentry_ingest, "d" * 32)
    sentry_ingest.respond_with(429, {"Retry-After": "1"})
    second = _post(sentry_ingest, "e" * 32)
    sentry_ingest.respond_with()
    third = _post(sentry_ingest, "f" * 32)

    assert (500, 429, 200) == (first, second, third)
    assert ["d" * 32, "e" * 32, "f" * 32] == [e["event_id"] for e in sentry_ingest.events]
    assert ["f" * 32] == [e["event_id"] for e in sentry_ingest.accepted_events]
    assert [500, 429, 200] == [env.status for env in sentry_ingest.envelopes]
