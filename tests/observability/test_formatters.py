"""mina.observability.formatters: the JSON line and the console view, after the chain."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import structlog

from mina.testing.plugin import PipelineFactory
from tests.support import SECRET


def test_exception_is_rendered_redacted_and_real_exc_info(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    try:
        raise ValueError(f"cannot connect to postgres://mina:{SECRET}@db/mina")
    except ValueError:
        structlog.get_logger().exception("db.failed")

    [line] = lines.all()
    assert "error" == line["level"]
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: cannot connect to postgres://mina:[REDACTED]@db/mina" in line["exception"]
    assert SECRET not in lines.text


class Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_values_json_cannot_encode_never_raise(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    cycle: dict[str, Any] = {"a": 1}
    cycle["self"] = cycle
    log = structlog.get_logger()
    log.info(
        "odd.values",
        tags={"b", "a"},
        raw=b"\x00bytes\xff",
        when=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        obj=Unrepresentable(),
        cycle=cycle,
        huge=2**80,
        nan=float("nan"),
        surrogate="\udcff",
    )

    [line] = lines.all()
    assert ["a", "b"] == sorted(line["tags"])
    assert "\x00bytes\ufffd" == line["raw"]
    assert "2026-01-02T03:04:05+00:00" == line["when"]
    assert "<unrepresentable Unrepresentable>" == line["obj"]
    assert 1 == line["cycle"]["a"]
    assert "<cycle>" in json.dumps(line["cycle"])
    assert str(2**80) == line["huge"]
    assert "odd.values" == line["event"]


def test_console_format_has_same_fields(mina_logging: PipelineFactory) -> None:
    lines = mina_logging(log_format="console")
    structlog.get_logger("mina.x").info("meeting.created", password=SECRET, seats=3)

    assert "meeting.created" in lines.text
    assert "seats=3" in lines.text
    assert SECRET not in lines.text


def test_formatter_declared_with_class_redacts_like_the_pipeline(
    mina_logging: PipelineFactory, tmp_path: Path
) -> None:
    path = tmp_path / "logging.yaml"
    path.write_text(
        "version: 1\n"
        "formatters: {plain: {class: mina.observability.formatters.JsonFormatter}}\n"
        "handlers: {out: {class: logging.StreamHandler, stream: ext://sys.stdout,"
        " formatter: plain}}\n"
        "root: {level: INFO, handlers: [out]}\n"
    )
    lines = mina_logging(logging_config=path, redact_keys=("room_code",))
    logging.getLogger("vendor").info("joined", extra={"room_code": "xyz", "seats": 2})

    [line] = lines.all()
    assert ("[REDACTED]", 2) == (line["room_code"], line["seats"])
