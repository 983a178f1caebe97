"""An envelope cut short in the outbox (a power loss before it was synced) is never sent:
it is dropped, counted in a client report and named in one line, whatever the cut left,
even a header that alone would parse as a valid empty envelope."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentry_sdk

from mina.logging_config import current_redactor
from mina.observability.sentry import init_sentry
from mina.settings import Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

from .test_transport import client_reports, start


def _header_only(data: bytes) -> int:
    return data.index(b"\n") + 1


CUTS = {
    "empty": lambda data: 0,
    "inside the header": lambda data: 7,
    "after the header": _header_only,
    "inside the item header": lambda data: _header_only(data) + 5,
    "inside the payload": lambda data: len(data) - 10,
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_a_cut_envelope_is_counted_not_sent(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path, cut: str
) -> None:
    outbox = tmp_path / "outbox"
    mina_logging(sentry_outbox=outbox)
    init_sentry(Settings(sentry_outbox=outbox), current_redactor())  # no DSN: kept
    whole = sentry_sdk.capture_message("whole", level="error")
    damaged = sentry_sdk.capture_message("damaged", level="error")
    sentry_sdk.get_client().close(timeout=2)
    [path] = [p for p in (outbox / "pending").iterdir() if str(damaged).encode() in p.read_bytes()]
    data = path.read_bytes()
    path.write_bytes(data[: CUTS[cut](data)])

    lines = start(mina_logging, sentry_ingest, tmp_path)
    sentry_sdk.flush(timeout=5)
    sentry_sdk.get_client().close(timeout=5)  # the client report goes out at the close

    assert [whole] == [event["event_id"] for event in sentry_ingest.events]
    assert {("error", "send_error"): 1} == client_reports(sentry_ingest)
    [line] = lines.events("sentry.envelope_damaged")
    assert (CUTS[cut](data), "error") == (line["size"], line["level"])
    assert [] == list((outbox / "pending").iterdir())
