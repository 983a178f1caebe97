"""The one pipeline: what reaches stdout and what reaches Sentry, from the same calls."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sentry_sdk
import structlog
from structlog.typing import EventDict, WrappedLogger

from mina.logging_config import configure_logging
from mina.observability import context
from mina.settings import ConfigError, Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory

from .support import ROOT, SECRET, flush

SCHEMA_HEAD = ["timestamp", "level", "logger", "event"]


# --- stdout -------------------------------------------------------------------------------


def test_structlog_call_is_one_json_line_in_schema_order(
    mina_logging: PipelineFactory,
) -> None:
    lines = mina_logging()
    context.bind_meeting("m-1")
    structlog.get_logger("mina.test").info("meeting.created", title="Standup", seats=4)

    [line] = lines.events("meeting.created")
    assert [*SCHEMA_HEAD, "meeting_id", "title", "seats"] == list(line)
    assert {
        "level": "info",
        "logger": "mina.test",
        "event": "meeting.created",
        "meeting_id": "m-1",
        "title": "Standup",
        "seats": 4,
    } == {k: v for k, v in line.items() if k != "timestamp"}
    context.clear()


def test_foreign_record_has_same_schema_context_and_redaction(
    mina_logging: PipelineFactory,
) -> None:
    lines = mina_logging()
    structlog.contextvars.bind_contextvars(request_id="r-1")
    logging.getLogger("urllib3.custom").warning(
        "connecting to %s with token=%s", "db", SECRET, extra={"password": SECRET, "port": 5432}
    )
    structlog.contextvars.clear_contextvars()

    [line] = lines.all()
    assert [*SCHEMA_HEAD, "request_id"] == list(line)[:5]
    assert "urllib3.custom" == line["logger"]
    assert "warning" == line["level"]
    assert "connecting to db with token=[REDACTED]" == line["event"]
    assert "[REDACTED]" == line["password"]
    assert 5432 == line["port"]
    assert SECRET not in lines.text


def test_secret_under_sensitive_key_is_redacted(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    structlog.get_logger().info("user.login", password=SECRET, meeting_id="m-9")

    [line] = lines.all()
    assert "[REDACTED]" == line["password"]
    assert "m-9" == line["meeting_id"]
    assert SECRET not in lines.text


def test_disabled_level_writes_nothing(mina_logging: PipelineFactory) -> None:
    lines = mina_logging(log_level=logging.WARNING)
    log = structlog.get_logger()
    log.info("hidden")
    log.debug("hidden")
    log.warning("shown")

    assert ["shown"] == [line["event"] for line in lines.all()]


def test_reconfiguring_the_level_reaches_cached_loggers(mina_logging: PipelineFactory) -> None:
    log = structlog.get_logger("cached")
    lines = mina_logging(log_level=logging.WARNING)
    log.info("first")
    lines = mina_logging(log_level=logging.DEBUG)
    log.debug("second")

    assert ["second"] == [line["event"] for line in lines.all()]


def _fail_on_explode(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    if event_dict["event"] == "explode.me":
        raise RuntimeError("processor failed")
    return event_dict


def test_a_failing_processor_never_raises_into_the_caller(
    mina_logging: PipelineFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = mina_logging()
    # structlog's own configuration route: Mina's bound logger class stays in charge.
    chain = structlog.get_config()["processors"]
    structlog.configure(processors=[*chain[:-1], _fail_on_explode, chain[-1]])
    log = structlog.get_logger("mina.failing")

    returned = log.info("explode.me", n=1)
    log.info("still.working")

    assert None is returned
    assert [
        "mina: logging failed for event 'explode.me': RuntimeError: processor failed"
    ] == capsys.readouterr().err.splitlines()
    assert ["still.working"] == [line["event"] for line in lines.all()]


class FailOnExplode(logging.Filter):
    """A handler filter that fails for one event: a broken part of someone's logging.yaml."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() == "explode.me":
            raise RuntimeError("filter failed")
        return True


def test_a_failing_handler_never_raises_into_the_caller(
    mina_logging: PipelineFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "logging.yaml"
    path.write_text(
        "version: 1\ndisable_existing_loggers: false\n"
        f"filters: {{failing: {{(): {__name__}.FailOnExplode}}}}\n"
        "formatters: {json: {(): mina.observability.formatters.JsonFormatter}}\n"
        "handlers: {out: {class: logging.StreamHandler, stream: ext://sys.stdout,"
        " formatter: json, filters: [failing]}}\n"
        "root: {level: INFO, handlers: [out]}\n"
    )
    lines = mina_logging(logging_config=path)
    log = structlog.get_logger("mina.failing")

    returned = log.warning("explode.me")
    log.warning("still.working")

    assert None is returned
    assert [
        "mina: logging failed for event 'explode.me': RuntimeError: filter failed"
    ] == capsys.readouterr().err.splitlines()
    assert ["still.working"] == [line["event"] for line in lines.all()]


def test_an_event_whose_repr_raises_is_still_logged(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()

    class Exploding:
        def __str__(self) -> str:
            raise RuntimeError("boom")

        __repr__ = __str__

    structlog.get_logger().info(Exploding())  # type: ignore[arg-type]
    structlog.get_logger().info("still.working")

    assert ["<unrepresentable Exploding>", "still.working"] == [
        line["event"] for line in lines.all()
    ]


def test_configure_is_idempotent(mina_logging: PipelineFactory) -> None:
    mina_logging()
    settings = Settings.from_env()
    first = configure_logging(settings)
    handlers = list(logging.getLogger().handlers)

    assert first is configure_logging(settings)
    assert handlers == logging.getLogger().handlers


def test_redact_keys_from_env_and_yaml(mina_logging: PipelineFactory, tmp_path: Path) -> None:
    config = (ROOT / "mina" / "logging.yaml").read_text()
    config = config.replace("keys: []", "keys: [meeting_passphrase]")
    config = config.replace("patterns: []", "patterns: ['MINA-[0-9]{6}']")
    path = tmp_path / "logging.yaml"
    path.write_text(config)
    lines = mina_logging(logging_config=path, redact_keys=("room_code",))
    structlog.get_logger().info(
        "custom.keys", meeting_passphrase="abc", room_code="xyz", note="ticket MINA-123456"
    )

    [line] = lines.all()
    assert "[REDACTED]" == line["meeting_passphrase"]
    assert "[REDACTED]" == line["room_code"]
    assert "ticket [REDACTED]" == line["note"]


def test_bad_logging_config_names_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nhandlers: {x: {class: no.such.Handler}}\nroot: {handlers: [x]}\n")

    with pytest.raises(ConfigError, match=r"^MINA_LOGGING_CONFIG="):
        configure_logging(Settings(logging_config=path), force=True)


# --- Sentry -------------------------------------------------------------------------------


def test_error_becomes_event_named_after_the_event(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)
    log = structlog.get_logger("mina.billing")
    for attempt in (1, 2):
        log.error("invoice.failed", attempt=attempt, invoice="inv-1")
    flush()

    events = sentry_ingest.wait_for_events(n=2)
    assert ["invoice.failed"] * 2 == [e["logentry"]["message"] for e in events]
    # The call's keys, and none of the pipeline's or the context's (Sentry has those).
    assert [{"attempt": 1, "invoice": "inv-1"}, {"attempt": 2, "invoice": "inv-1"}] == [
        {k: v for k, v in e["extra"].items() if k != "sys.argv"} for e in events
    ]
    assert {"mina.billing"} == {e["logger"] for e in events}


def test_info_calls_are_breadcrumbs_of_the_next_error(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)
    log = structlog.get_logger("mina.flow")
    with sentry_sdk.isolation_scope():
        context.bind(request_id="r-42")
        log.debug("too.low")
        log.info("step.one", n=1)
        log.warning("step.two", n=2)
        log.error("step.failed")
        context.clear()
    flush()

    [event] = sentry_ingest.wait_for_events()
    crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("category") == "mina.flow"]
    assert [("step.one", "info", {"n": 1}), ("step.two", "warning", {"n": 2})] == [
        (c["message"], c["level"], c["data"]) for c in crumbs
    ]
    # Context reaches Sentry through its own fields, not extra.
    assert "r-42" == event["tags"]["request_id"]
    assert "request_id" not in event.get("extra", {})


def test_exception_carries_the_stack_trace(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry(traces_sample_rate=0.0)

    def explode() -> None:
        raise KeyError("missing")

    try:
        explode()
    except KeyError:
        structlog.get_logger().exception("lookup.failed")
    flush()

    [event] = sentry_ingest.wait_for_events()
    [exc] = event["exception"]["values"]
    assert "KeyError" == exc["type"]
    assert "explode" == exc["stacktrace"]["frames"][-1]["function"]
    assert "lookup.failed" == event["logentry"]["message"]


def test_secrets_leave_by_neither_route(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    lines = mina_sentry(traces_sample_rate=0.0)
    log = structlog.get_logger()
    log.info("auth.attempt", password=SECRET, api_key=SECRET)
    logging.getLogger("thirdparty").info("Authorization: Bearer %s", SECRET)
    log.error("auth.failed", access_token=SECRET, url=f"https://x/cb?token={SECRET}")
    flush()

    sentry_ingest.wait_for_events()
    assert SECRET not in lines.text
    assert not any(SECRET.encode() in body for body in sentry_ingest.raw_bodies)
    assert 4 == len(lines.all())


# --- a real process -----------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import logging, structlog
    from mina.logging_config import configure_logging, current_redactor
    configure_logging()
    log = structlog.get_logger("script")
    log.info("one", n=1)
    log.info("reserved", name="x", args=(1, 2))
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET / HTTP/1.1" 200 -')
    log.info("multi\\nline", text="a\\nb\\u2028c", emoji="\\U0001f600")
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("math.failed", password="pw-canary")
    log.info("big", blob="x" * 100_000)
    """
)


def test_subprocess_stdout_is_one_json_object_per_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LOG_LEVEL": "INFO"},
        cwd=ROOT,
    )

    # splitlines also breaks at U+2028 and NEL: the pipeline escapes them.
    raw = result.stdout.decode("utf-8").splitlines()
    lines = [json.loads(line) for line in raw]
    assert ["one", "reserved", '127.0.0.1 - - "GET / HTTP/1.1" 200 -', "multi\nline"] == [
        line["event"] for line in lines[:4]
    ]
    assert all(SCHEMA_HEAD == list(line)[:4] for line in lines)
    assert "a\nb\u2028c" == lines[3]["text"]
    assert "ZeroDivisionError: division by zero" in lines[4]["exception"]
    assert b"pw-canary" not in result.stdout
    assert 6 == len(lines)
    assert b"" == result.stderr


@pytest.mark.parametrize(
    ("caller_info", "expected"), [(False, "(unknown function)"), (True, "call_site")]
)
def test_caller_info_is_opt_in(
    mina_logging: PipelineFactory, tmp_path: Path, caller_info: bool, expected: str
) -> None:
    config = (ROOT / "mina" / "logging.yaml").read_text()
    path = tmp_path / "logging.yaml"
    path.write_text(
        config.replace("caller_info: false", f"caller_info: {str(caller_info).lower()}")
    )
    mina_logging(logging_config=path)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)

    def call_site() -> None:
        structlog.get_logger().info("where.am.i")
        logging.getLogger("foreign").info("and here")

    try:
        call_site()
    finally:
        logging.getLogger().removeHandler(handler)
        configure_logging(Settings(), force=True)  # back to the packaged default

    assert [expected, expected] == [record.funcName for record in records]


def test_bad_calls_never_raise_and_are_reported(
    mina_logging: PipelineFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = mina_logging()
    log = structlog.get_logger()

    log.info("progress %d", "not a number")
    log.log(25, "custom level")
    log.log("info", "level as a string")  # type: ignore[arg-type]
    log.info("after.the.bad.ones")

    assert ["after.the.bad.ones"] == [line["event"] for line in lines.all()]
    reported = capsys.readouterr().err.splitlines()
    assert 3 == len(reported)
    assert all(line.startswith("mina: logging failed for event ") for line in reported)


def test_mina_logger_follows_reconfiguration(mina_logging: PipelineFactory) -> None:
    from mina.logging_config import get_logger

    log = get_logger()  # made before configuration, like a module-level logger
    lines = mina_logging(log_level=logging.WARNING)
    log.debug("hidden")
    log.warning("shown", n=1)
    lines = mina_logging(log_level=logging.DEBUG)
    log.debug("now.shown")

    assert ["now.shown"] == [line["event"] for line in lines.all()]
    assert __name__ == lines.all()[0]["logger"]
    assert "<MinaLogger 'tests.test_logging_config'>" == repr(log)


def test_foreign_messages_lose_terminal_escapes(mina_logging: PipelineFactory) -> None:
    lines = mina_logging()
    # werkzeug's development-server banner, coloured for a terminal
    logging.getLogger("werkzeug").warning(
        "\x1b[31m\x1b[1mWARNING: This is a development server.\x1b[0m\n"
        " * Running on \x1b]8;;http://127.0.0.1:5000\x07http://127.0.0.1:5000\x1b]8;;\x07"
    )

    [line] = lines.all()
    assert (
        "WARNING: This is a development server.\n * Running on http://127.0.0.1:5000"
        == line["event"]
    )
