"""The outbox transport against the local ingest with real faults: nothing captured during
an outage is lost or sent twice, the link's state is one line per change, bounds count
what they drop, and a request-side capture never touches the network."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog

from mina.logging_config import current_redactor
from mina.observability.sentry import init_sentry
from mina.observability.sentry.transport import THREAD_PREFIX
from mina.settings import Settings
from mina.testing import CapturedLogs, SentryIngest
from mina.testing.plugin import PipelineFactory

Fault = Callable[[SentryIngest], None]


def start(
    mina_logging: PipelineFactory, ingest: SentryIngest, tmp_path: Path, **overrides: Any
) -> CapturedLogs:
    """The pipeline and Sentry with the outbox in *tmp_path*, sending to *ingest*."""
    overrides = {
        "sentry_dsn": ingest.dsn,
        "traces_sample_rate": 0.0,
        "sentry_outbox": tmp_path / "outbox",
        "sentry_timeout": 0.3,
        "sentry_retry_max": 0.5,
        "storm_budget": 0,
        **overrides,
    }
    lines = mina_logging(**overrides)
    init_sentry(replace(Settings.from_env(), **overrides), current_redactor())
    return lines


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll *predicate* every 20 ms for at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s")
        time.sleep(0.02)


def capture_errors(n: int, prefix: str) -> list[str]:
    """Log *n* distinct errors with tracebacks through the pipeline; return their ids."""
    log = structlog.get_logger("mina.test")
    ids = []
    for i in range(n):
        try:
            raise RuntimeError(f"{prefix} {i}")
        except RuntimeError:
            log.error(f"{prefix}.failed.{i}", exc_info=True)
        ids.append(sentry_sdk.last_event_id())
    return [id_ for id_ in ids if id_]


def client_reports(ingest: SentryIngest) -> dict[tuple[str, str], int]:
    """The quantities of every client report received, by (category, reason)."""
    totals: dict[tuple[str, str], int] = {}
    for item in ingest.items("client_report"):
        for lost in item.json["discarded_events"]:
            key = (lost["category"], lost["reason"])
            totals[key] = totals.get(key, 0) + lost["quantity"]
    return totals


def _refuse(ingest: SentryIngest) -> None:
    ingest.stop()


def _hang(ingest: SentryIngest) -> None:
    ingest.respond_with(hang=True)


def _status_500(ingest: SentryIngest) -> None:
    ingest.respond_with(500)


def _status_429(ingest: SentryIngest) -> None:
    ingest.respond_with(429, {"Retry-After": "1"})


def _slow(ingest: SentryIngest) -> None:
    ingest.respond_with(delay=0.1)  # answers, within the socket timeout


def _recover(ingest: SentryIngest) -> None:
    if ingest._server is None:  # refused: serve again on the same port
        ingest.start()
    ingest.respond_with()


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        (_refuse, "sentry.unreachable"),
        (_hang, "sentry.unreachable"),
        (_status_500, "sentry.unreachable"),
        (_status_429, "sentry.rate_limited"),
        (_slow, None),
    ],
    ids=["refuse", "hang", "500", "429-retry-after", "slow"],
)
def test_every_error_captured_during_an_outage_arrives_once_after_recovery(
    mina_logging: PipelineFactory,
    sentry_ingest: SentryIngest,
    tmp_path: Path,
    fault: Fault,
    line: str | None,
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path)
    fault(sentry_ingest)

    captured = capture_errors(20, "outage")
    if line is not None:
        wait_for(lambda: bool(lines.events(line)))
    _recover(sentry_ingest)
    sentry_ingest.wait(lambda ingest: len(ingest.accepted_events) >= 20, timeout=15)
    sentry_sdk.flush(timeout=5)

    accepted = [event["event_id"] for event in sentry_ingest.accepted_events]
    assert sorted(captured) == sorted(accepted)
    assert 20 == len(captured)
    events = [record["event"] for record in lines.all()]
    state_lines = [e for e in events if e.startswith(("sentry.unreachable", "sentry.rate_"))]
    assert ([line] if line else []) == state_lines
    assert (1 if line else 0) == events.count("sentry.recovered")
    assert [] == [record for record in lines.all() if record["logger"].startswith("urllib3")]
    assert [] == list((tmp_path / "outbox" / "pending").iterdir())


def test_link_lines_carry_counts_and_outbox_depth(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path)
    sentry_ingest.respond_with(503)

    capture_errors(3, "down")
    wait_for(lambda: bool(lines.events("sentry.unreachable")))
    sentry_ingest.respond_with()
    wait_for(lambda: bool(lines.events("sentry.recovered")))

    [down] = lines.events("sentry.unreachable")
    [up] = lines.events("sentry.recovered")
    assert ("warning", "HTTP 503") == (down["level"], down["error"])
    assert 1 <= down["outbox_depth"] <= 3
    assert down["outbox_bytes"] > 0
    assert ("unreachable", True) == (up["was"], up["failed_attempts"] >= 1)
    assert {"outbox_depth", "outbox_bytes", "down_seconds"} <= set(up)


def test_a_rejected_envelope_is_dropped_and_counted(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path)
    sentry_ingest.respond_with(400)

    [event_id] = capture_errors(1, "rejected")
    wait_for(lambda: bool(lines.events("sentry.envelope_rejected")))
    sentry_ingest.respond_with()
    sentry_sdk.flush(timeout=5)

    assert [event_id] == [event["event_id"] for event in sentry_ingest.events]
    assert {("error", "send_error"): 1} == client_reports(sentry_ingest)
    assert 400 == lines.events("sentry.envelope_rejected")[0]["status"]


def test_a_burst_with_sentry_healthy_is_delivered_or_counted(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    # A timeout no loaded machine reaches: an answer that times out may still have been
    # received, and then dropped by the bound too (counted twice).
    lines = start(mina_logging, sentry_ingest, tmp_path, outbox_max_events=10, sentry_timeout=5.0)

    captured = [sentry_sdk.capture_message(f"burst {i}", level="error") for i in range(300)]

    def accounted() -> int:
        # Each flush sends what waits and the client report of what was dropped so far;
        # a claim still being sent when the outbox looks empty is accounted a moment later.
        sentry_sdk.flush(timeout=1)
        counted = client_reports(sentry_ingest).get(("error", "cache_overflow"), 0)
        return len(sentry_ingest.accepted_events) + counted

    wait_for(lambda: accounted() >= 300, timeout=30)

    delivered = {event["event_id"] for event in sentry_ingest.accepted_events}
    counted = client_reports(sentry_ingest).get(("error", "cache_overflow"), 0)
    assert len(delivered) == len(sentry_ingest.accepted_events)  # none twice
    assert delivered <= set(captured)
    assert 300 == len(delivered) + counted
    dropped_lines = sum(line["errors"] for line in lines.events("sentry.outbox_dropped"))
    assert counted == dropped_lines


def test_without_a_dsn_envelopes_stay_in_the_outbox(
    mina_logging: PipelineFactory, tmp_path: Path
) -> None:
    lines = mina_logging(sentry_outbox=tmp_path / "outbox")
    init_sentry(Settings(sentry_outbox=tmp_path / "outbox"), current_redactor())

    event_id = sentry_sdk.capture_message("kept locally", level="error")
    sentry_sdk.flush(timeout=2)

    [line] = lines.events("sentry.disabled")
    assert "SENTRY_DSN is not set" == line["reason"]
    assert str(tmp_path / "outbox") == line["outbox"]
    assert "kept in the outbox; `mina outbox flush` sends them to a DSN" == line["events"]
    [kept] = list((tmp_path / "outbox" / "pending").iterdir())
    assert event_id is not None and event_id.encode() in kept.read_bytes()


def test_captured_events_reach_the_outbox_even_while_sentry_hangs(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    start(mina_logging, sentry_ingest, tmp_path, sentry_timeout=30.0)
    sentry_ingest.respond_with(hang=True)
    capture_errors(1, "first")  # the sender now waits on a request that never ends
    sending = tmp_path / "outbox" / "sending"
    wait_for(lambda: sending.is_dir() and any(sending.iterdir()))

    ids = capture_errors(5, "during")  # returns at once (mina.observability.sentry.deferred)

    def pending() -> str:
        return " ".join(path.read_text() for path in (tmp_path / "outbox" / "pending").iterdir())

    wait_for(lambda: all(id_ in pending() for id_ in ids))  # written by the event worker
    sentry_ingest.respond_with()


def test_urllib3_records_from_the_outbox_threads_are_dropped_others_kept(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path)

    def warn(text: str) -> None:
        logging.getLogger("urllib3.connectionpool").warning("Retrying %s", text)

    threads = [
        threading.Thread(target=warn, args=("from the outbox",), name=f"{THREAD_PREFIX}-sender"),
        threading.Thread(target=warn, args=("from the app",), name="app-thread"),
    ]
    for thread in threads:
        thread.start()
        thread.join()

    assert ["Retrying from the app"] == [
        line["event"] for line in lines.all() if line["logger"] == "urllib3.connectionpool"
    ]


def test_a_category_rate_limit_holds_its_envelopes_and_lets_errors_through(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path, traces_sample_rate=1.0)
    sentry_ingest.respond_with(200, {"X-Sentry-Rate-Limits": "3:transaction"})
    first = sentry_sdk.capture_message("sets the limit", level="error")
    sentry_ingest.wait(lambda ingest: len(ingest.accepted_events) == 1)
    sentry_ingest.respond_with()

    with sentry_sdk.start_transaction(name="limited"):
        pass
    second = sentry_sdk.capture_message("not limited", level="error")
    sentry_ingest.wait(lambda ingest: len(ingest.accepted_events) == 2)
    held = [path.name[0] for path in (tmp_path / "outbox" / "pending").iterdir()]
    transactions = sentry_ingest.wait_for_transactions(1, timeout=10)

    assert [first, second] == [event["event_id"] for event in sentry_ingest.accepted_events]
    assert ["t"] == held
    [limited] = lines.events("sentry.rate_limited")
    assert (["transaction"], 0.0 < limited["retry_in"] <= 3.0) == (limited["categories"], True)
    assert [] == lines.events("sentry.recovered")  # errors kept going: the link never broke
    assert ["limited"] == [transaction["transaction"] for transaction in transactions]


def test_transactions_dropped_by_the_bounds_are_counted_with_their_spans(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    # Sentry unreachable while 8 transactions of 3 spans each meet an outbox of 5: the
    # oldest 3 are dropped, each counted as one transaction and its 4 spans (3 + itself).
    lines = start(
        mina_logging,
        sentry_ingest,
        tmp_path,
        traces_sample_rate=1.0,
        outbox_max_events=5,
        sentry_retry_max=60.0,
    )
    sentry_ingest.stop()
    for i in range(8):
        with sentry_sdk.start_transaction(name=f"job {i}"):
            for j in range(3):
                with sentry_sdk.start_span(op="step", name=f"step {j}"):
                    pass
    wait_for(lambda: bool(lines.events("sentry.outbox_dropped")))
    _recover(sentry_ingest)
    sentry_sdk.flush(timeout=5)
    sentry_ingest.wait(lambda ingest: len(ingest.transactions) >= 5, timeout=10)
    sentry_sdk.flush(timeout=5)

    [dropped] = lines.events("sentry.outbox_dropped")
    assert (0, 0, 5) == (dropped["errors"], dropped["reports"], dropped["max_events"])
    assert Settings().outbox_max_bytes == dropped["max_bytes"]
    assert 5 == dropped["outbox_depth"] and dropped["outbox_bytes"] > 0
    # Every transaction arrived or was counted, each counted one with its 4 spans.
    counted = client_reports(sentry_ingest)
    lost = counted.get(("transaction", "cache_overflow"), 0)
    assert 3 <= lost == 8 - len(sentry_ingest.transactions)
    assert 4 * lost == counted[("span", "cache_overflow")]


def test_a_503_with_retry_after_waits_as_long_as_sentry_asked(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path, sentry_retry_max=30.0)
    sentry_ingest.respond_with(503, {"Retry-After": "2"})

    [event_id] = capture_errors(1, "later")
    wait_for(lambda: bool(lines.events("sentry.unreachable")))
    sentry_ingest.respond_with()
    sentry_ingest.wait(lambda ingest: len(ingest.accepted_events) == 1, timeout=15)

    [unreachable] = lines.events("sentry.unreachable")
    # The wait is Sentry's 2 s, not the 0.25-0.5 s of a first retry.
    assert ("HTTP 503", 2.0) == (unreachable["error"], unreachable["retry_in"])
    assert [event_id] == [event["event_id"] for event in sentry_ingest.accepted_events]
    statuses = [request.status for request in sentry_ingest.requests]
    assert [503] * (len(statuses) - 1) + [200] == statuses


def test_the_outbox_files_each_envelope_by_what_it_holds(
    mina_logging: PipelineFactory, tmp_path: Path
) -> None:
    # Without a DSN everything stays on disk: the outbox's names say what each holds
    # (c: client report, e: error, t: the rest), which decides what is sent and dropped
    # first.
    outbox = tmp_path / "outbox"
    mina_logging(sentry_outbox=outbox)
    settings = Settings(sentry_outbox=outbox, traces_sample_rate=1.0, outbox_max_events=3)
    init_sentry(settings, current_redactor())

    sentry_sdk.capture_message("kept", level="error")
    for i in range(3):
        with sentry_sdk.start_transaction(name=f"job {i}"), sentry_sdk.start_span(op="step"):
            pass
    pending = outbox / "pending"
    wait_for(lambda: sorted(p.name[0] for p in pending.iterdir()) == ["e", "t", "t"])
    sentry_sdk.flush(timeout=2)  # writes the client report of what the bounds dropped

    kinds = sorted(path.name[0] for path in pending.iterdir())
    [report] = [path for path in pending.iterdir() if path.name.startswith("c")]
    body = json.loads(report.read_bytes().splitlines()[2])
    assert ["c", "e", "t", "t"] == kinds
    assert [
        {"reason": "cache_overflow", "category": "span", "quantity": 2},
        {"reason": "cache_overflow", "category": "transaction", "quantity": 1},
    ] == body["discarded_events"]


@pytest.mark.parametrize("status", [408, 502])
def test_an_answer_that_says_try_again_keeps_the_envelope(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path, status: int
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path)
    sentry_ingest.respond_with(status)

    [event_id] = capture_errors(1, "again")
    wait_for(lambda: bool(lines.events("sentry.unreachable")))
    sentry_ingest.respond_with()
    sentry_ingest.wait(lambda ingest: len(ingest.accepted_events) == 1, timeout=15)

    assert f"HTTP {status}" == lines.events("sentry.unreachable")[0]["error"]
    assert [event_id] == [event["event_id"] for event in sentry_ingest.accepted_events]
    assert [] == lines.events("sentry.envelope_rejected")


def test_an_outage_is_retried_with_backoff_not_in_a_loop(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(mina_logging, sentry_ingest, tmp_path, sentry_retry_max=0.4)
    sentry_ingest.respond_with(503)

    capture_errors(1, "down")
    wait_for(lambda: bool(lines.events("sentry.unreachable")))
    threading.Event().wait(1.0)
    attempts = len(sentry_ingest.requests)
    sentry_ingest.respond_with()

    # Retries 0.2-0.4 s apart: a handful in a second (fewer on a busy machine), never
    # the hundreds of a sender that does not wait.
    assert 1 <= attempts <= 15


def test_a_batch_of_sentry_logs_dropped_by_the_bounds_counts_each_log(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    lines = start(
        mina_logging,
        sentry_ingest,
        tmp_path,
        sentry_enable_logs=True,
        outbox_max_events=1,
        sentry_retry_max=60.0,
    )
    sentry_ingest.stop()
    event_id = sentry_sdk.capture_message("kept", level="error")  # no log line of its own
    for i in range(3):
        sentry_sdk.logger.info("step {n}", n=i)
    sentry_sdk.flush(timeout=1)  # the SDK hands its batch of logs to the transport
    wait_for(lambda: bool(lines.events("sentry.outbox_dropped")))
    _recover(sentry_ingest)
    sentry_sdk.flush(timeout=5)
    sentry_ingest.wait(lambda ingest: bool(client_reports(ingest)), timeout=10)

    assert [event_id] == [event["event_id"] for event in sentry_ingest.accepted_events]
    # The three steps went in one envelope, maybe with Mina's own lines about the link:
    # the drop of that envelope counts every log in it, not one.
    assert [] == [log for log in sentry_ingest.logs if log["body"].startswith("step")]
    counted = client_reports(sentry_ingest)
    assert ["log_item"] == [category for category, _ in counted]
    assert counted[("log_item", "cache_overflow")] >= 3
    assert 0 == lines.events("sentry.outbox_dropped")[0]["errors"]
