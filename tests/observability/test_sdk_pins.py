"""What the fast path and the presented breadcrumbs take from sentry-sdk and structlog.

Each private name or behaviour `mina.observability.sentry.sdk`, `.sdk_present` and
`mina.observability.fastpath` rely on is pinned here, so an upgrade that changes one
fails loudly instead of changing what reaches stdout or Sentry. The central one: an event
whose breadcrumbs, ``modules`` and ``sdk`` were presented by `present_serialized` serialises to
exactly what the SDK's own walk makes of the original.
"""

from __future__ import annotations

import copy
import io
import logging
import sys
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sentry_sdk
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk import scope as sentry_scope
from sentry_sdk import serializer
from sentry_sdk.integrations import logging as sentry_logging
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.serializer import serialize
from sentry_sdk.utils import AnnotatedValue

from mina.logging_config import configure_logging
from mina.observability.sentry.sdk import (
    CrumbRoute,
    MinaLoggingIntegration,
    active_client,
    append_breadcrumb,
    is_sentry_call_handlers,
)
from mina.observability.sentry.sdk_present import (
    REDACTED_MARK,
    RedactedCrumbs,
    install_presenter,
    present_serialized,
)
from mina.settings import Settings
from mina.testing import SentryIngest

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=12)
    ),
    max_leaves=20,
)
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
) | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1))
CRUMBS = st.fixed_dictionaries(
    {
        "type": st.just("log"),
        "level": st.sampled_from(["info", "warning"]),
        "category": st.text(max_size=8),
        "message": st.text(max_size=8),
        "timestamp": MOMENTS,
        "data": st.dictionaries(st.text(max_size=4), VALUES, max_size=13),
        "_mina_redacted": st.just(True) | st.just(False),
    }
)


@pytest.fixture(scope="module", params=[None, 5])
def length(request: pytest.FixtureRequest) -> Iterator[int | None]:
    """A client with this ``max_value_length`` (None: the SDK's default, no limit)."""
    with SentryIngest() as ingest:
        sentry_sdk.init(dsn=ingest.dsn, max_value_length=request.param)
        yield request.param
        sentry_sdk.get_client().close(timeout=2)
        sentry_sdk.get_global_scope().set_client(None)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(crumbs=st.lists(CRUMBS, min_size=1, max_size=6))
def test_presented_events_serialise_as_the_sdks_walk(
    length: int | None, crumbs: list[dict[str, Any]]
) -> None:
    modules = {"flask": "3.1.0", "structlog": "25.1.0"}
    event = {
        "message": "boom",
        "breadcrumbs": {"values": [dict(crumb) for crumb in crumbs]},
        "modules": modules,
        "sdk": {"name": "sentry.python", "version": "2", "integrations": ["logging"]},
        "extra": {"x": 1},
    }
    original = copy.deepcopy(event)

    present_serialized(event, {})

    expected = serialize(original, max_value_length=length)
    actual = serialize(event, max_value_length=length)
    if type(actual["breadcrumbs"]) is RedactedCrumbs:
        # Presented: final already, without the mark before_send takes off the others.
        for crumb in expected["breadcrumbs"]["values"]:
            del crumb[REDACTED_MARK]
    assert expected == actual


def test_a_truncated_buffer_keeps_its_length_annotation() -> None:
    crumbs = [{"type": "log", "message": str(i), "data": {}, REDACTED_MARK: True} for i in range(3)]
    sdk = {"name": "sentry.python"}
    event: dict[str, Any] = {"sdk": sdk, "breadcrumbs": {"values": crumbs}}
    plain = {
        "sdk": sdk,
        "breadcrumbs": AnnotatedValue(
            {"values": [{k: v for k, v in c.items() if k != REDACTED_MARK} for c in crumbs]},
            {"len": 9},
        ),
    }
    present_serialized(event, {})
    # As the SDK does after the processors for a buffer that dropped breadcrumbs.
    event["breadcrumbs"] = AnnotatedValue(event["breadcrumbs"], {"len": 9})
    assert serialize(plain) == serialize(event)
    assert {"breadcrumbs": {"": {"len": 9}}} == serialize(event)["_meta"]


def test_the_presenter_runs_after_the_sdks_processors_and_before_serialize() -> None:
    seen: list[str] = []

    def before_send(event: dict[str, Any], hint: Any) -> None:
        seen.append(type(event["breadcrumbs"]).__name__)
        seen.append(type(event["modules"]).__name__)
        return None

    def spy(event: dict[str, Any], hint: Any) -> dict[str, Any]:
        # A processor of the current scope: runs after the presenter.
        seen.append(type(event["breadcrumbs"]).__name__)
        seen.append(type(event["modules"]).__name__)
        return event

    with SentryIngest() as ingest, sentry_sdk.isolation_scope() as scope:
        sentry_sdk.init(dsn=ingest.dsn, before_send=before_send)
        install_presenter()
        install_presenter()  # once is enough: still one processor
        crumb = {"type": "log", "message": "m", "timestamp": _now(), REDACTED_MARK: True}
        append_breadcrumb(scope, crumb, 100)
        with sentry_sdk.new_scope() as current:
            current.add_event_processor(spy)
            sentry_sdk.capture_message("x")
        sentry_sdk.get_client().close(timeout=2)
    processors = sentry_sdk.get_global_scope()._event_processors
    assert 1 == processors.count(present_serialized)
    # serialize() turned the presented values back into plain ones, modules included.
    assert ["_Presented", "_Presented", "RedactedCrumbs", "dict"] == seen


def _now() -> datetime:
    return datetime.now(UTC) - timedelta(seconds=1)


def test_private_scope_and_integration_names_exist() -> None:
    scope = sentry_sdk.Scope()
    assert isinstance(scope._breadcrumbs, deque)
    assert 0 == scope._n_breadcrumbs_truncated
    integration = MinaLoggingIntegration(level=logging.INFO, event_level=logging.ERROR)
    for name in ("_handler", "_breadcrumb_handler", "_sentry_logs_handler"):
        assert hasattr(integration, name)
    assert isinstance(sentry_logging._IGNORED_LOGGERS, set)
    assert all(
        isinstance(getattr(sentry_scope, name), ContextVar)
        for name in ("_current_scope", "_isolation_scope")
    )
    assert hasattr(sentry_scope, "_global_scope")
    assert isinstance(serializer.MAX_DATABAG_BREADTH, int)
    assert isinstance(serializer.global_repr_processors, list)


@pytest.mark.parametrize("where", ["global", "isolation", "current", "none"])
def test_active_client_finds_what_get_client_and_get_current_scope_find(where: str) -> None:
    def found() -> tuple[Any, Any]:
        client = sentry_sdk.get_client()
        return (client if client.is_active() else None), sentry_sdk.get_current_scope()

    with SentryIngest() as ingest:
        sentry_sdk.init(dsn=ingest.dsn)
        client = sentry_sdk.get_client()
        try:
            with sentry_sdk.isolation_scope() as isolation, sentry_sdk.new_scope() as current:
                sentry_sdk.get_global_scope().set_client(client if where == "global" else None)
                isolation.set_client(client if where == "isolation" else None)
                current.set_client(client if where == "current" else None)
                expected = found()
                actual = active_client()
        finally:
            client.close(timeout=2)
            sentry_sdk.get_global_scope().set_client(None)
    assert (None if where == "none" else client, current) == expected
    assert expected == actual


def test_the_sdks_call_handlers_wrapper_is_recognised() -> None:
    with SentryIngest() as ingest:
        sentry_sdk.init(dsn=ingest.dsn, integrations=[LoggingIntegration()])
        assert is_sentry_call_handlers(logging.Logger.callHandlers)
        route = CrumbRoute(sentry_sdk.get_client())
        assert (logging.ERROR, route.client) == (route.event_level, sentry_sdk.get_client())
    assert not is_sentry_call_handlers(logging.Handler.handle)


def test_structlog_keeps_its_context_variables_by_key() -> None:
    structlog.contextvars.bind_contextvars(pinned=1)
    try:
        variable = structlog.contextvars._CONTEXT_VARS["structlog_pinned"]
        assert 1 == variable.get()
    finally:
        structlog.contextvars.unbind_contextvars("pinned")


def test_structlogs_proxy_caches_its_bound_logger_and_keeps_resolved_methods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    configure_logging(Settings.from_env({}), force=True, fast_path=True)
    log = structlog.get_logger("mina.pinned")
    method = log.debug
    # structlog put its cached bind on the proxy; the fast path kept the level method.
    assert ("bind" in vars(log), method) == (True, vars(log)["debug"])
    configure_logging(Settings.from_env({}), force=True, fast_path=False)
    assert "debug" not in vars(log)  # forgotten on reconfiguration
