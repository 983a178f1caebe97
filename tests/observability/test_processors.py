"""mina.observability.processors: each step of the chain, seen on the line it leaves."""

from __future__ import annotations

import logging

import pytest
import sentry_sdk
import structlog
from freezegun import freeze_time

from mina.testing.plugin import PipelineFactory


@freeze_time("2026-11-29 10:20:30.123456")
def test_timestamp_is_iso_utc(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    structlog.get_logger("t").warning("clock.read")
    logging.getLogger("foreign.lib").warning("foreign clock")

    assert ["2026-11-29T10:20:30.123456Z"] * 2 == [line["timestamp"] for line in lines.all()]


@freeze_time("2026-11-29 10:20:30")
def test_timestamp_keeps_its_width_on_whole_seconds(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    structlog.get_logger().info("tick")
    logging.getLogger("foreign").warning("tock")

    assert ["2026-11-29T10:20:30.000000Z"] * 2 == [line["timestamp"] for line in lines.all()]


@pytest.mark.parametrize("key", ["name", "message", "args", "module", "filename", "created", "msg"])
def test_reserved_key_is_renamed_not_raised(mina_logging: PipelineFactory, key: str) -> None:
    lines = mina_logging()
    structlog.get_logger().info("reserved.key", **{key: "value"})

    [line] = lines.all()
    assert "value" == line[key + "_"]
    assert key not in line


def test_head_keys_are_never_overwritten(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    structlog.get_logger("mine").warning("clash", level="debug", logger="x", timestamp="y")
    logging.getLogger("other").error(
        "quota", extra={"event": "e", "level": "debug", "logger": "l", "timestamp": "t"}
    )

    own, foreign = lines.all()
    assert ("warning", "mine", "clash") == (own["level"], own["logger"], own["event"])
    assert ("debug", "x", "y") == (own["level_"], own["logger_"], own["timestamp_"])
    assert ("error", "other", "quota") == (foreign["level"], foreign["logger"], foreign["event"])
    assert ("e", "debug", "l", "t") == (
        foreign["event_"],
        foreign["level_"],
        foreign["logger_"],
        foreign["timestamp_"],
    )


def test_stack_info_works_without_caller_info(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()

    def where() -> None:
        structlog.get_logger().info("with.stack", stack_info=True)

    where()

    [line] = lines.all()
    assert line["stack"].startswith("Stack (most recent call last):")
    assert "in where" in line["stack"]


def test_a_renamed_key_never_overwrites_one_the_call_passed(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    structlog.get_logger().info("both", name="a", name_="b", level="c", level_="d", level__="e")

    [line] = lines.all()
    assert {"name_": "b", "name__": "a", "level_": "d", "level__": "e", "level___": "c"} == {
        key: value for key, value in line.items() if key.startswith(("name", "level_"))
    }


def test_log_kwargs_are_not_line_keys(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    log = structlog.get_logger("kw")

    log.info("with.stack", stack_info=True, n=1, extra="kept", msg_="kept")
    try:
        raise ValueError("x")
    except ValueError:
        log.error("with.exc", exc_info=True, n=2)

    stack, exc = lines.all()
    assert ["timestamp", "level", "logger", "event", "n", "extra", "msg_", "stack"] == list(stack)
    assert ("kept", "kept") == (stack["extra"], stack["msg_"])
    assert ["timestamp", "level", "logger", "event", "n", "exception"] == list(exc)


#: The schema's line order, spelled out: a key dropped from the registry must fail here.
LINE_ORDER = [
    "timestamp",
    "level",
    "logger",
    "event",
    "request_id",
    "method",
    "path",
    "route",
    "user_id",
    "username",
    "meeting_id",
    "trace_id",
    "span_id",
    "user_email",
    "client_ip",
    "user_agent",
]


def test_every_context_key_has_its_place_on_the_line(mina_logging: PipelineFactory) -> None:
    lines = mina_logging(send_pii=True)
    # Bound in reverse, passed after the call's own keys: the line still follows the schema.
    structlog.contextvars.bind_contextvars(**{key: key.upper() for key in reversed(LINE_ORDER[4:])})
    try:
        structlog.get_logger("order").info("ordered", zeta=1, alpha=2)
        logging.getLogger("order.foreign").info("foreign", extra={"zeta": 1, "alpha": 2})
    finally:
        structlog.contextvars.clear_contextvars()

    own, foreign = lines.all()
    assert [*LINE_ORDER, "zeta", "alpha"] == list(own)
    assert [*LINE_ORDER, "zeta", "alpha"] == list(foreign)
    assert "CLIENT_IP" == own["client_ip"]


def test_a_trace_id_the_call_brought_is_kept_beside_sentrys(mina_sentry: PipelineFactory) -> None:
    lines = mina_sentry(traces_sample_rate=1.0)
    log = structlog.get_logger("trace")

    with sentry_sdk.start_transaction(name="job") as transaction:
        log.info("theirs", trace_id="0" * 32, span_id="upstream-span")
        log.info("same", trace_id=transaction.trace_id)

    [theirs], [same] = lines.events("theirs"), lines.events("same")
    assert (transaction.trace_id, "0" * 32) == (theirs["trace_id"], theirs["trace_id_"])
    assert (transaction.span_id, "upstream-span") == (theirs["span_id"], theirs["span_id_"])
    assert transaction.trace_id == same["trace_id"]
    assert "trace_id_" not in same
