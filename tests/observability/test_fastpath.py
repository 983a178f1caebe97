"""The fast path's licence: for any calls, it writes what the full chain writes.

Each generated program (log calls at every level, nested values, secrets, reserved keys,
line separators, bound and unbound context, loggers with bound values, exceptions and
foreign stdlib records interleaved) runs twice: with the fast path and with
``fast_path=False``. The stdout bytes and the Sentry events (breadcrumbs, extra, tags,
``_meta``) the local ingest received through the SDK's real transport must be equal, once
timestamps and ids are masked.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sentry_sdk
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.utils import format_timestamp

from mina.logging_config import configure_logging
from mina.observability import context, fastpath, processors
from mina.observability.sentry import sentry_options
from mina.settings import ConfigError, Settings
from mina.testing import SentryIngest

SECRETS = [
    "hunter2",
    "password=hunter2",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "postgres://mina:s3cr3t@db.internal/mina",
    "https://x/cb?token=abcdef0123456789",
    "4111 1111 1111 1111",
    "ada@example.com",
]
BREAKS = ["\u2028", "\u2029", "\u0085", "\n", '"', "\\", "é", "😀"]

KEYS = st.sampled_from(
    [
        "meeting_id",
        "title",
        "seats",
        "password",
        "api_token",
        "user",
        "items",
        "data",
        "note",
        # renamed or special: the full chain's business
        "name",
        "message",
        "args",
        "msg",
        "level",
        "logger",
        "timestamp",
        "trace_id",
        "span_id",
        "request_id",
        "user_id",
        "path",
        "_private",
    ]
)
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(SECRETS),
    # over Sentry's 1,024-character cut, and over the stdout line cap
    st.sampled_from(["é" * 700, "x" * 20_000]),
    st.lists(st.sampled_from([*BREAKS, "a", " ", "ok"]), max_size=5).map("".join),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), inner, max_size=12),
    ),
    max_leaves=14,
)
CALL_KW = st.dictionaries(KEYS, VALUES, max_size=5)
EVENTS = st.one_of(TEXT, st.sampled_from(["meeting.created", "job.done", "db.query"]))
CONTEXT_KEYS = st.sampled_from(["request_id", "method", "user_id", "job", "tenant", "password"])
CONTEXT_VALUES = st.one_of(SCALARS, st.sampled_from([["a", "b"], {"k": "v"}]))
LEVELS = st.sampled_from(["debug", "info", "info", "warning", "warn", "msg", "error"])

OPS = st.one_of(
    st.tuples(st.just("log"), LEVELS, EVENTS, CALL_KW),
    st.tuples(st.just("log"), st.just("info"), EVENTS, CALL_KW),
    st.tuples(st.just("bind"), st.dictionaries(CONTEXT_KEYS, CONTEXT_VALUES, max_size=3)),
    st.tuples(st.just("mina_bind"), st.dictionaries(CONTEXT_KEYS, SCALARS, max_size=2)),
    st.tuples(st.just("unbind"), st.lists(CONTEXT_KEYS, max_size=2)),
    st.tuples(st.just("logger_bind"), st.dictionaries(KEYS, SCALARS, max_size=2)),
    st.tuples(st.just("foreign"), st.sampled_from(["info", "warning", "error"]), TEXT, TEXT),
    st.tuples(st.just("exception"), EVENTS, TEXT),
    st.tuples(st.just("interpolate"), st.just("info"), TEXT),
)
PROGRAMS = st.lists(OPS, min_size=1, max_size=12)


def _run(program: list[tuple[Any, ...]], *, fast: bool, level: int, dsn: str, traced: bool) -> str:
    stream = io.StringIO()
    saved = sys.stdout
    sys.stdout = stream  # the stdout handler of logging.yaml binds sys.stdout when built
    try:
        settings_ = replace(_SETTINGS, log_level=level, sentry_dsn=dsn)
        configure_logging(settings_, force=True, fast_path=fast)
    finally:
        sys.stdout = saved
    structlog.contextvars.clear_contextvars()
    context.clear()
    base = structlog.get_logger("mina.diff")
    log = base
    with sentry_sdk.isolation_scope(), contextlib.ExitStack() as stack:
        if traced:  # lines carry the active span's ids inside a transaction
            stack.enter_context(sentry_sdk.start_transaction(name="diff", op="test"))
        for op in program:
            _step(op, log)
            if op[0] == "logger_bind":
                log = base.bind(**op[1])
        log.error("program.end", done=True)
    structlog.contextvars.clear_contextvars()
    context.clear()
    sentry_sdk.flush(timeout=5)
    return stream.getvalue()


def _step(op: tuple[Any, ...], log: Any) -> None:
    kind = op[0]
    if kind == "log":
        _, level, event, kw = op
        getattr(log, level)(event, **kw)
    elif kind == "bind":
        structlog.contextvars.bind_contextvars(**op[1])
    elif kind == "mina_bind":
        context.bind(**op[1])
    elif kind == "unbind":
        structlog.contextvars.unbind_contextvars(*op[1])
    elif kind == "foreign":
        _, level, message, arg = op
        getattr(logging.getLogger("thirdparty.lib"), level)(
            "%s said %s", message, arg, extra={"port": 5432, "api_key": arg}
        )
    elif kind == "exception":
        _, event, text = op
        try:
            raise ValueError(f"failed with {text}")
        except ValueError:
            log.info(event, exc_info=True, text=text)
    elif kind == "interpolate":
        _, level, text = op
        getattr(log, level)("with %s", text)


#: Both runs send the same events: neither storm accounting (which would count the
#: repeated program.end events after the first twenty) nor an outbox stands in between.
_SETTINGS = replace(Settings.from_env({}), storm_budget=0, sentry_outbox=None)
_STAMP = re.compile(rb'^\{"timestamp":"[^"]*"', re.MULTILINE)
_IDS = re.compile(rb'"(trace_id|span_id)":"[0-9a-f]*"')
_MASKED_KEYS = frozenset(
    {"timestamp", "event_id", "trace_id", "span_id", "sent_at", "sample_rand", "parent_span_id"}
)


def _mask_stdout(text: str) -> bytes:
    out = _STAMP.sub(b'{"timestamp":"T"', text.encode("utf-8"))
    return _IDS.sub(rb'"\1":"ID"', out)


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "M" if k in _MASKED_KEYS else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def _events(ingest: SentryIngest) -> list[Any]:
    events = [_mask(item.json) for item in ingest.items("event")]
    ingest.clear()
    return events


@pytest.fixture(scope="module")
def ingest() -> Any:
    with SentryIngest() as server:
        yield server


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=PROGRAMS, traced=st.booleans())
def test_fast_path_writes_what_the_full_chain_writes(
    ingest: SentryIngest, level: int, program: list[tuple[Any, ...]], traced: bool
) -> None:
    settings_ = replace(_SETTINGS, log_level=level, sentry_dsn=ingest.dsn)
    if not sentry_sdk.get_client().is_active():
        sentry_sdk.init(**sentry_options(settings_, configure_logging(settings_)))
    ingest.clear()

    fast_out = _run(program, fast=True, level=level, dsn=ingest.dsn, traced=traced)
    fast_events = _events(ingest)
    full_out = _run(program, fast=False, level=level, dsn=ingest.dsn, traced=traced)
    full_events = _events(ingest)

    assert _mask_stdout(full_out) == _mask_stdout(fast_out)
    assert full_events == fast_events
    # and in the same order, key by key (breadcrumb data follows the context's order)
    assert json.dumps(full_events) == json.dumps(fast_events)
    assert len(full_events) >= 1  # at least program.end, with the breadcrumbs before it


def _records(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    original = logging.Logger.makeRecord

    def counting(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(logging.Logger, "makeRecord", counting)
    return made


@pytest.mark.parametrize("fast", [True, False])
def test_a_plain_call_skips_the_log_record_only_on_the_fast_path(
    monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    configure_logging(Settings.from_env({}), force=True, fast_path=fast)
    made = _records(monkeypatch)
    log = structlog.get_logger("mina.fast")

    log.info("meeting.created", seats=4)
    log.info("meeting.%s", "created")  # positional arguments: the full chain

    expected = ["mina.fast"] if fast else ["mina.fast", "mina.fast"]
    assert expected == made
    assert 2 == len(stream.getvalue().splitlines())


def test_a_non_default_handler_set_means_the_full_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    configure_logging(Settings.from_env({}), force=True, fast_path=True)
    extra = logging.StreamHandler(io.StringIO())
    logging.getLogger("mina").addHandler(extra)
    made = _records(monkeypatch)
    try:
        structlog.get_logger("mina.fast.extra").info("meeting.created")
    finally:
        logging.getLogger("mina").removeHandler(extra)

    assert ["mina.fast.extra"] == made
    assert "meeting.created" in extra.stream.getvalue()


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, True), ({"MINA_LOG_FAST_PATH": "0"}, False), ({"MINA_LOG_FAST_PATH": "1"}, True)],
)
def test_the_switch_is_read_from_the_environment(env: dict[str, str], expected: bool) -> None:
    assert expected == Settings.from_env(env).log_fast_path


def test_a_bad_switch_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MINA_LOG_FAST_PATH='maybe' is invalid"):
        Settings.from_env({"MINA_LOG_FAST_PATH": "maybe"})


def test_lines_match_the_json_the_chain_writes() -> None:
    # A sanity anchor for the masks above: they leave the rest of the line alone.
    line = '{"timestamp":"2026-01-01T00:00:00.000001Z","level":"info","trace_id":"ab12"}\n'
    assert b'{"timestamp":"T","level":"info","trace_id":"ID"}\n' == _mask_stdout(line)


def test_a_bad_switch_is_said_once_by_a_first_log_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MINA_LOG_FAST_PATH", "maybe")
    from mina.logging_config import _configure_from_environment

    _configure_from_environment()  # what a script's first mina.get_logger call runs
    assert "mina: configuration error: MINA_LOG_FAST_PATH" in capsys.readouterr().err


@given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))  # to 9999-12-31
def test_the_stamp_and_the_breadcrumb_time_are_the_chains_for_any_instant(now_ns: int) -> None:
    # The fast path's timestamp (made per second, then the microseconds) is the one
    # add_timestamp writes for that instant, and the breadcrumb's datetime is that instant
    # to the microsecond, which Sentry serialises to the very same text. (The differential
    # test masks timestamps, so it cannot see these.)
    moment = datetime.fromtimestamp(now_ns // 1_000_000_000, UTC)
    moment = moment.replace(microsecond=now_ns // 1000 % 1_000_000)
    stamp = fastpath._timestamp(now_ns)
    assert processors._iso(moment) == stamp
    assert moment == fastpath._moment(now_ns)
    assert format_timestamp(moment) == stamp
