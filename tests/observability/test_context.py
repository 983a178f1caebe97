"""mina.observability.context: one call binds the log context and the Sentry scope together."""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
import structlog

from mina.observability import context
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import flush


def test_bind_user_meeting_and_fields_reach_both_sides(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)
    log = structlog.get_logger("ctx")

    context.bind_user(7, username="ada", email="ada@example.org")
    context.bind_meeting("m-7", participants=3)
    context.bind_meeting("m-7", audio_quality="good")
    context.bind(tenant="acme", flags=["a", "b"])
    log.error("ctx.failed", attempt=1)
    sentry_sdk.flush(timeout=5)

    [line] = lines.events("ctx.failed")
    assert {"user_id": 7, "username": "ada", "meeting_id": "m-7", "tenant": "acme"}.items() <= (
        line.items()
    )
    assert ["a", "b"] == line["flags"]
    assert "user_email" not in line
    [event] = sentry_ingest.wait_for_events()
    assert {"id": "7", "username": "ada"} == event["user"]
    assert ("m-7", "acme") == (event["tags"]["meeting_id"], event["tags"]["tenant"])
    assert {"id": "m-7", "participants": 3, "audio_quality": "good"} == event["contexts"]["meeting"]
    assert {"flags": ["a", "b"]} == event["contexts"]["mina"]
    assert {"attempt": 1} == {k: v for k, v in event["extra"].items() if k != "sys.argv"}


def test_bind_user_keeps_email_with_consent(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0, send_pii=True)

    context.bind_user(8, username="bo", email="bo@example.org")
    structlog.get_logger().error("ctx.failed")
    sentry_sdk.flush(timeout=5)

    assert "bo@example.org" == lines.events("ctx.failed")[0]["user_email"]
    assert "bo@example.org" == sentry_ingest.wait_for_events()[0]["user"]["email"]


def test_bound_restores_previous_values_on_both_sides(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)
    log = structlog.get_logger()
    context.bind(job="outer")

    @context.bound(job="decorated")
    def work() -> None:
        log.error("in.decorated")

    with context.bound(job="inner", step=2):
        log.error("in.block")
    work()
    log.error("after")
    sentry_sdk.flush(timeout=5)

    assert [
        ("in.block", "inner", 2),
        ("in.decorated", "decorated", None),
        ("after", "outer", None),
    ] == [(line["event"], line["job"], line.get("step")) for line in lines.all() if "job" in line]
    events = sentry_ingest.wait_for_events(n=3)
    assert ["inner", "decorated", "outer"] == [e["tags"]["job"] for e in events]
    assert ["2", None, None] == [e["tags"].get("step") for e in events]


def test_clear_forgets_log_context_and_meeting_fields(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    context.bind_meeting("m-1", title="old")
    context.clear()
    context.bind_meeting("m-2")
    structlog.get_logger().info("fresh")

    assert "m-2" == lines.events("fresh")[0]["meeting_id"]


def test_long_tag_values_are_cut_for_sentry(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=1.0)

    context.bind(note="n" * 500)
    sentry_sdk.capture_message("long tag")
    sentry_sdk.flush(timeout=5)

    assert 200 == len(sentry_ingest.wait_for_events()[0]["tags"]["note"])


def test_another_meeting_starts_with_fresh_fields(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=1.0)

    context.bind_meeting("m-secret", room="private")
    context.bind_meeting("m-2", participants=2)
    sentry_sdk.capture_message("which meeting")
    sentry_sdk.flush(timeout=5)

    assert {"id": "m-2", "participants": 2} == (
        sentry_ingest.wait_for_events()[0]["contexts"]["meeting"]
    )


def test_bound_keys_stay_in_their_own_context(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=1.0)
    log = structlog.get_logger()

    def other_request() -> None:  # its own contextvars and Sentry scope, as under Flask
        with sentry_sdk.isolation_scope():
            context.bind(chunk_id=1)

    contextvars.copy_context().run(other_request)
    log.error("upload.failed", chunk_id=7, reason="disk")
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    assert {"chunk_id": 7, "reason": "disk"} == {
        k: v for k, v in event["extra"].items() if k != "sys.argv"
    }
    assert "chunk_id" not in event.get("tags", {})


def _extra(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.get("extra", {}).items() if k != "sys.argv"}


def test_every_bound_key_stays_out_of_extra_until_cleared(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)
    log = structlog.get_logger()

    context.bind(tenant="acme")
    context.bind(job="sync")  # a second bind keeps the first one's keys bound
    log.error("bound.twice", attempt=1)
    with context.bound(step=2):
        log.error("in.block", attempt=2)
    log.error("after.block", step=3)  # step is the call's own again
    context.clear()
    log.error("after.clear", tenant="own", job="own")
    flush()

    events = sentry_ingest.wait_for_events(n=4)
    assert [
        {"attempt": 1},
        {"attempt": 2},
        {"step": 3},
        {"tenant": "own", "job": "own"},
    ] == [_extra(event) for event in events]
    assert [("acme", "sync"), ("acme", "sync"), ("acme", "sync")] == [
        (e["tags"]["tenant"], e["tags"]["job"]) for e in events[:3]
    ]
    assert "2" == events[1]["tags"]["step"]


def test_clear_forgets_the_fields_of_the_same_meeting(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)

    context.bind_meeting("m-1", room="private")
    context.clear()
    context.bind_meeting("m-1", participants=2)
    sentry_sdk.capture_message("which fields")
    flush()

    assert {"id": "m-1", "participants": 2} == (
        sentry_ingest.wait_for_events()[0]["contexts"]["meeting"]
    )


BINDS = {
    "bind_user": "mina.context.bind_user(7, username='ada')",
    "bind_meeting": "mina.context.bind_meeting('m-7')",
    "bind": "mina.context.bind(tenant='acme')",
    "bound": "stack.enter_context(mina.context.bound(tenant='acme'))",
}


@pytest.mark.parametrize("call", BINDS.values(), ids=BINDS.keys())
def test_the_first_bind_of_a_process_configures_the_pipeline(call: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import contextlib, structlog
        import mina.context
        with contextlib.ExitStack() as stack:
            {call}
            structlog.get_logger("script").info("after.bind", api_key="k-1")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "MINA_DATABASE": str(tmp_path / "m.db")},
        check=False,
    )

    assert 0 == done.returncode, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert ["sentry.disabled", "after.bind"] == [line["event"] for line in lines]
    assert "[REDACTED]" == lines[1]["api_key"]
