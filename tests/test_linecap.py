"""CapturedLogs over the size cap are cut field by field, stay JSON, and keep their head."""

from __future__ import annotations

import json
import logging
from typing import Any

import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mina.observability.formatters import JsonFormatter, dumps
from mina.observability.linecap import MARKER
from mina.observability.record import RECORD_ATTR, Rendered
from mina.observability.schema import CONTEXT_ORDER, HEAD_KEYS
from mina.testing.plugin import PipelineFactory


def line_of(event: dict[str, Any], cap: int) -> str:
    record = logging.LogRecord("mina.test", logging.INFO, __file__, 1, "x", (), None)
    record.__dict__[RECORD_ATTR] = Rendered(line=event, call={})
    return JsonFormatter(max_line_bytes=cap).format(record)


def test_a_long_field_keeps_its_start_and_end_and_the_marker_says_what_was_cut(
    mina_logging: PipelineFactory,
) -> None:
    lines = mina_logging(log_max_line_bytes=4096)
    structlog.contextvars.bind_contextvars(request_id="r-1", path="/api/meetings")
    body = "<" + "b" * 20_000 + ">"

    structlog.get_logger("mina.api").info(
        "upload.received", body=body, sizes=list(range(2000)), note="kept"
    )

    [line] = lines.all()
    assert len(lines.text.encode()) <= 4096
    assert {
        "level": "info",
        "logger": "mina.api",
        "event": "upload.received",
        "request_id": "r-1",
        "path": "/api/meetings",
        "body": line["body"],
        "note": "kept",
        MARKER: {
            "body": 20_004,
            "sizes": len(json.dumps(list(range(2000)), separators=(",", ":"))),
        },
    } == {key: value for key, value in line.items() if key != "timestamp"}
    head, _, tail = line["body"].partition("…[")
    count, _, rest = tail.partition(" bytes cut]…")
    assert (head + "b" * int(count) + rest) == body


def test_a_line_under_the_cap_is_left_alone() -> None:
    event = {"timestamp": "t", "level": "info", "logger": "l", "event": "e", "x": "y" * 1000}

    assert dumps(event).decode() == line_of(event, 2048)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    # long strings, cheaply: a short text repeated
    | st.builds(lambda text, n: text * n, st.text(min_size=1, max_size=8), st.integers(1, 4000)),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
context_values = st.one_of(
    st.integers(), st.text(max_size=300), st.builds(lambda n: "p" * n, st.integers(0, 9000))
)


@settings(max_examples=60, deadline=None)
@given(
    cap=st.sampled_from([2048, 4096, 16 * 1024]),
    event=st.text(max_size=200) | st.builds(lambda n: "e" * n, st.integers(0, 40_000)),
    logger=st.text(max_size=60),
    context=st.dictionaries(st.sampled_from(CONTEXT_ORDER), context_values, max_size=6),
    call=st.dictionaries(st.text(max_size=20), json_values, max_size=12),
)
# Found by hypothesis: a call key named like the marker was overwritten by it, unlisted.
@example(
    cap=2048,
    event="",
    logger="",
    context={},
    call={"": "0000\x1f\u0800" * 150, MARKER: None},
)
def test_every_line_parses_fits_the_cap_and_keeps_its_head(
    cap: int, event: str, logger: str, context: dict[str, Any], call: dict[str, Any]
) -> None:
    original = {
        "timestamp": "2026-11-29T10:00:01.250113Z",
        "level": "info",
        "logger": logger,
        "event": event,
        **context,
        **{key: value for key, value in call.items() if key not in (*HEAD_KEYS, *CONTEXT_ORDER)},
    }

    text = line_of(original, cap)

    line = json.loads(text)
    assert len(text.encode()) + 1 <= cap  # the newline the handler adds
    assert list(HEAD_KEYS) == list(line)[:4]
    if MARKER not in line:
        assert json.loads(dumps(original)) == line
        return
    # Cut: timestamp, level and logger whole; every other key is whole, shortened, or
    # listed as cut.
    assert (original["timestamp"], original["level"], logger) == (
        line["timestamp"],
        line["level"],
        line["logger"],
    )
    listed = line[MARKER]
    whole = json.loads(dumps(original))  # what an uncut line would have held
    for key in original:
        if key in line and line[key] == whole[key]:
            continue
        assert key[:64] in listed or "(more)" in listed or "(all other keys)" in listed
    for key in context:  # request context: present while the rest could make room
        assert key in line or "(all other keys)" in listed
