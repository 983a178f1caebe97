"""mina.observability.processors: each step of the chain, seen on the line it leaves."""

from __future__ import annotations

import logging

import pytest
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
