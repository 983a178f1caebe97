"""The SDK's own envelope POSTs never show up as spans of the app's transactions."""

from __future__ import annotations

from mina.observability.sentry.options import sentry_options
from mina.redaction import Redactor
from mina.settings import Settings

DSN = "http://abc@127.0.0.1:9000/1"


def test_spans_of_the_sdk_posting_to_its_ingest_are_dropped() -> None:
    """A self-hosted Sentry on a port: the SDK cannot tell its own requests; Mina can."""
    hook = sentry_options(Settings(sentry_dsn=DSN), Redactor())["before_send_transaction"]
    own = {"op": "http.client", "data": {"url": "http://127.0.0.1:9000/api/1/envelope/"}}
    app = {"op": "http.client", "data": {"url": "http://127.0.0.1:9000/api/1/other/"}}
    odd = {"op": "db", "data": "not a mapping"}

    event = hook({"type": "transaction", "spans": [own, app, odd]}, {})

    assert [app, odd] == event["spans"]
