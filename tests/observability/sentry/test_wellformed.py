"""Relay accepts every event: typed fields that sentry-sdk copies as Python holds them.

Each case makes the real SDK build an event with a value of the wrong type for Relay's
schema (an ``OSError`` with a string errno, a logging level of its own...), sends it
through Mina's hooks to the local ingest, and runs Relay's own normaliser
(``sentry_relay.StoreNormalizer``) over what arrived: no ``invalid_data``, no other error.
"""

from __future__ import annotations

import errno
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_relay
import sentry_sdk

from mina.observability.sentry.wellformed import level, wellformed
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory


class QuotaError(OSError):
    """An OSError subclass some libraries raise with a string code."""


def relay_errors(meta: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Where Relay's normaliser rejected a value, read off its ``_meta``."""
    if not isinstance(meta, dict):
        return
    for key, child in meta.items():
        if key == "":
            for error in child.get("err", []):
                yield path, error
        else:
            yield from relay_errors(child, f"{path}.{key}" if path else key)


def _raise(exc: BaseException) -> Callable[[], None]:
    def capture() -> None:
        try:
            raise exc
        except BaseException:
            sentry_sdk.capture_exception()

    return capture


def _log_after_custom_crumb() -> None:
    logging.addLevelName(25, "AUDIT")
    logging.getLogger("vendor.audit").log(25, "audit trail written")
    logging.getLogger("vendor.audit").error("audit failed")


def _context_of_wrong_types() -> None:
    sentry_sdk.set_context("response", {"status_code": "502"})
    sentry_sdk.set_context("runtime", {"name": "CPython", "version": 3.11})
    sentry_sdk.set_tag("shard", {"id": 3})  # type: ignore[arg-type]
    sentry_sdk.capture_message("upstream failed", level="warn")  # type: ignore[arg-type]


CASES: dict[str, Callable[[], None]] = {
    "OSError with a string errno": _raise(OSError("abc", "def")),
    "OSError subclass, errno by name": _raise(QuotaError("EDQUOT", "quota exceeded")),
    "FileNotFoundError with a numeric string": _raise(FileNotFoundError("2", "missing")),
    "a logging level of its own (breadcrumb)": _log_after_custom_crumb,  # events map numbers
    "contexts, tags and level of the wrong type": _context_of_wrong_types,
}


@pytest.mark.parametrize("make", list(CASES.values()), ids=list(CASES))
def test_relay_finds_no_error_in_the_event(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest, make: Callable[[], None]
) -> None:
    mina_sentry()

    make()
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    normalized = sentry_relay.StoreNormalizer(project_id=1).normalize_event(event)
    assert [] == list(relay_errors(normalized.get("_meta")))
    assert [] == sentry_ingest.errors


def test_errno_by_name_becomes_its_number(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry()

    _raise(QuotaError("EDQUOT", "quota exceeded"))()
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    [exc] = event["exception"]["values"]
    assert {"number": errno.EDQUOT} == exc["mechanism"]["meta"]["errno"]
    assert "[Errno EDQUOT] quota exceeded" == exc["value"]


def test_unreadable_errno_is_dropped_and_the_message_kept(
    mina_sentry: PipelineFactory, sentry_ingest: SentryIngest
) -> None:
    mina_sentry()

    _raise(OSError("abc", "def"))()
    sentry_sdk.flush(timeout=5)

    [event] = sentry_ingest.wait_for_events()
    [exc] = event["exception"]["values"]
    assert "errno" not in exc["mechanism"].get("meta", {})
    assert "[Errno abc] def" == exc["value"]


def test_mechanism_meta_siblings() -> None:
    """signal, mach_exception and ns_error follow the same rule as errno."""
    event: dict[str, Any] = {
        "exception": {
            "values": [
                {
                    "type": "E",
                    "mechanism": {
                        "type": "generic",
                        "handled": "no",
                        "exception_id": "3",
                        "meta": {
                            "errno": {"number": "2", "name": 2},
                            "signal": {"number": "SIGTERM", "code": "x", "name": "SIGTERM"},
                            "mach_exception": {"exception": "1", "code": -1, "subcode": 2},
                            "ns_error": {"code": "nope", "domain": "d"},
                        },
                    },
                }
            ]
        },
        "level": "WARN",
        "user": {"id": "1", "ip_address": "unix:/run/mina.sock"},
        "fingerprint": ["{{ default }}", 3],
    }

    out = wellformed(event)

    [exc] = out["exception"]["values"]
    assert {
        "type": "generic",
        "exception_id": 3,
        "meta": {
            "errno": {"number": 2, "name": "2"},
            "signal": {"number": int(signal.SIGTERM), "name": "SIGTERM"},
            "mach_exception": {"exception": 1, "subcode": 2},
        },
    } == exc["mechanism"]
    assert "warning" == out["level"]
    assert {"id": "1"} == out["user"]
    assert ["{{ default }}", "3"] == out["fingerprint"]
    normalized = sentry_relay.StoreNormalizer(project_id=1).normalize_event(out)
    assert [] == list(relay_errors(normalized.get("_meta")))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("warning", "warning"),
        ("WARNING", "warning"),
        ("warn", "warning"),
        ("notice", "info"),
        ("critical", "critical"),
        ("trace", "debug"),
        ("something", "error"),
        (None, "error"),
        (40, 40),
    ],
)
def test_level(given: Any, expected: Any) -> None:
    assert expected == level(given, "error")
