"""`serialize_plain` / `serialize_event`: the SDK's ``serialize`` without its walk, for plain
events, and the SDK's walk for everything else.

The licence: for generated events (plain ones, and ones with everything the SDK trims,
reprs or annotates), `serialize_event` returns exactly what ``sentry_sdk.serializer.serialize``
returns. The other tests pin that the fast walk is really taken for the events Mina
sends, and that the SDK's client calls it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sentry_sdk
from hypothesis import given, settings
from hypothesis import strategies as st
from sentry_sdk import client as sentry_client
from sentry_sdk import serializer
from sentry_sdk.serializer import serialize
from sentry_sdk.utils import AnnotatedValue

from mina.observability.sentry.sdk_present import _Presented
from mina.observability.sentry.sdk_serialize import (
    install_serializer,
    serialize_event,
    serialize_plain,
)
from mina.testing import SentryIngest


class _Colour(enum.IntEnum):
    RED = 1


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class _Dated(datetime):
    """A datetime subclass, as freezegun's ``FakeDatetime``."""


LIMITS = st.sampled_from([None, 8, 64, 1024])
TEXT = st.one_of(
    st.text(max_size=6),
    st.text(st.characters(codec="utf-8"), min_size=60, max_size=80),  # over the small limits
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),  # lone surrogates
)
DATES = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),  # naive: local time, as format_timestamp takes it
    st.datetimes(timezones=st.just(timezone(timedelta(hours=-5)))),
    st.builds(
        lambda d: _Dated.fromtimestamp(d.timestamp(), UTC), st.datetimes(timezones=st.just(UTC))
    ),
)
ODD = st.sampled_from([b"bytes", _Colour.RED, _Opaque(), {1, 2}, frozenset({"a"})])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(), TEXT
)
KEYS = st.one_of(st.text(max_size=4), st.integers(0, 3))


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=12),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=4), inner, max_size=12),
        st.dictionaries(KEYS, inner, max_size=3),
        inner.map(lambda value: AnnotatedValue(value, {"len": 99})),
        inner.map(lambda value: _Presented({"k": 1}, value)),
    )


VALUES = st.recursive(
    st.one_of(SCALARS, SCALARS, DATES, ODD),
    _containers,
    max_leaves=40,
)
TOP_KEYS = st.sampled_from(
    [
        "extra",
        "breadcrumbs",
        "request",
        "contexts",
        "tags",
        "user",
        "spans",
        "_meta",
        "message",
        "level",
        "exception",
        "logentry",
        "modules",
    ]
)
CRUMBS = st.fixed_dictionaries(
    {"values": st.lists(st.dictionaries(st.text(max_size=4), VALUES, max_size=12), max_size=4)},
    optional={"other": VALUES},
)
REQUESTS = st.fixed_dictionaries({"url": TEXT}, optional={"data": VALUES, "headers": VALUES})
EVENTS = st.dictionaries(
    st.one_of(TOP_KEYS, st.text(max_size=5)),
    st.one_of(
        VALUES,
        CRUMBS,
        CRUMBS.map(lambda crumbs: AnnotatedValue(crumbs, {"len": 120})),
        REQUESTS,
    ),
    max_size=8,
)


def _cyclic(event: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"a": 1}
    extra["self"] = extra
    return {**event, "extra": extra}


@settings(max_examples=120, deadline=None)
@given(event=EVENTS, limit=LIMITS, cycle=st.booleans())
def test_serialize_event_equals_the_sdk_walk(event: dict[str, Any], limit: int | None, cycle: bool):
    if cycle:
        event = _cyclic(event)
    expected = serialize(event, max_value_length=limit)
    made = serialize_event(event, max_value_length=limit)
    assert expected == made


def _error_event() -> dict[str, Any]:
    """An event as the logging integration and Mina's processors make it for log.error."""
    crumbs = [
        {
            "type": "log",
            "level": "info",
            "category": "mina.api",
            "message": "step.done",
            "timestamp": datetime(2026, 12, 1, 10, 0, i, tzinfo=UTC),
            "data": {"step": i, "title": "Standup", "duration_ms": 12.5},
        }
        for i in range(3)
    ]
    return {
        "level": "error",
        "logger": "mina.api",
        "logentry": {"message": "invoice.failed", "formatted": "invoice.failed", "params": ()},
        "extra": {"title": "Standup", "seats": 4, "sys.argv": ["gunicorn", "main:app"]},
        "event_id": "26407a8430364323baa1af91fa4d72d8",
        "timestamp": datetime(2026, 12, 1, 10, 0, 5, 123456, tzinfo=UTC),
        "contexts": {
            "trace": {"trace_id": "4a5e" * 8, "span_id": "858b" * 4, "parent_span_id": None},
            "runtime": {"name": "CPython", "version": "3.11.7"},
        },
        "tags": {"request_id": "5f0c1d2e", "meeting_id": "9b2e4c1a"},
        "user": {"id": "7"},
        "breadcrumbs": AnnotatedValue({"values": crumbs}, {"len": 120}),
        "modules": _Presented({"flask": "3.1"}, {"flask": "3.1"}),
        "release": "mina@0.1.0",
        "platform": "python",
    }


def test_a_mina_error_event_takes_the_plain_walk():
    event = _error_event()
    made = serialize_plain(event, max_value_length=1024)
    assert made is not None
    assert serialize(event, max_value_length=1024) == made
    assert {"breadcrumbs": {"": {"len": 120}}} == made["_meta"]
    assert "2026-12-01T10:00:05.123456Z" == made["timestamp"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda e: e["extra"].update({f"k{i}": i for i in range(10)}), "extra over 10 keys"),
        (lambda e: e["extra"].update(deep={"a": {"b": {"c": {"d": 1}}}}), "extra 5 deep"),
        (lambda e: e["logentry"].update(message="x" * 2000), "a string over the limit"),
        (lambda e: e["tags"].update(n=float("nan")), "a NaN"),
        (lambda e: e["contexts"].update(o=_Opaque()), "an object only repr() shows"),
        (lambda e: e.update(request={"data": {"a": 1}}), "a request body"),
        (lambda e: e.update(spans=[]), "spans"),
    ],
)
def test_what_the_sdk_would_change_takes_its_walk(change: Any, why: str):
    event = _error_event()
    change(event)
    assert serialize_plain(event, max_value_length=1024) is None, why
    assert serialize(event, max_value_length=1024) == serialize_event(event, max_value_length=1024)


def test_repr_processors_take_the_sdk_walk(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(serializer, "global_repr_processors", [lambda value, hint: NotImplemented])
    assert serialize_plain(_error_event(), max_value_length=1024) is None


def test_the_client_serialises_with_serialize_event():
    """Pins ``Client._prepare_event`` calling the module-level name ``serialize``."""
    assert "serialize" in sentry_client._Client._prepare_event.__code__.co_names
    install_serializer()
    assert serialize_event is sentry_client.serialize  # type: ignore[attr-defined]


def test_an_event_through_the_sdk_arrives_as_its_walk_would_make_it(
    mina_sentry: Any, sentry_ingest: SentryIngest
):
    """A real client, transport and ingest: the event that arrives carries the trimmed
    ``extra`` (the SDK's walk) and the plain context (the fast one) alike."""
    mina_sentry()
    sentry_sdk.set_tag("meeting_id", "m-1")
    sentry_sdk.capture_event(
        {
            "message": "plain",
            "extra": {"wide": {f"k{i}": i for i in range(12)}, "n": 1},
        }
    )
    sentry_sdk.capture_event({"message": "plain too", "extra": {"n": 2}})
    wide, plain = sentry_ingest.wait_for_events(2)
    assert {"": {"len": 12}} == wide["_meta"]["extra"]["wide"]
    assert 10 == len(wide["extra"]["wide"])
    assert 2 == plain["extra"]["n"]
    assert "m-1" == plain["tags"]["meeting_id"]
