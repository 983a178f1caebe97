"""Nothing a request leaves behind may stay: memory is flat over many requests.

A few hundred in-process requests (the Flask test client) with Sentry sending to the local
ingest and every request traced, errors included (a handled one and a message from
``/api/test-sentry-error``, an unhandled exception, a 404, API calls that bind a user and
a meeting). After a warm-up that fills every bounded cache, the objects the garbage
collector tracks, counted by type, and the memory tracemalloc sees must not grow with the
number of requests. `bench.soak` measures the same under real gunicorn, for minutes.

Also here: no module raises an exception object made once at import. Each ``raise``
of a shared instance appends to its ``__traceback__``, which keeps every frame of every
raise alive with its locals (the cause of a 50 KB-per-request leak).
"""

from __future__ import annotations

import ast
import collections
import contextlib
import gc
import sys
import time
import tracemalloc
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import flask.testing
import pytest
import sentry_sdk

from mina.logging_config import configure_logging
from mina.settings import Settings
from mina.testing import SentryIngest
from mina.testing.plugin import PipelineFactory
from tests.support import ROOT, create_app, make_user

WARMUP = 120
REQUESTS = 240
#: Growth allowed over `REQUESTS` requests, per type of object the collector tracks: a leak
#: of one object per request is 240; bounded caches are full after the warm-up.
MAX_NEW_OBJECTS = REQUESTS // 8
#: And of memory tracemalloc sees, in bytes: the leak this guards against kept about 60 KB
#: per request (15 MB here); the redactor's cache of clean strings alone may take half a
#: megabyte before it is emptied, in steps (its set grows by doubling).
MAX_NEW_BYTES = 2 * 1024 * 1024


def _traffic(client: flask.testing.FlaskClient, token: str) -> list[Callable[[], object]]:
    auth = {"Authorization": f"Bearer {token}"}
    meeting = client.post("/api/meetings", json={"title": "Standup"}, headers=auth).json
    assert meeting is not None
    mid = meeting["id"]
    return [
        lambda: client.get("/healthz"),
        lambda: client.get("/api/test-sentry-error"),
        lambda: client.get(f"/api/meetings/{mid}/explode", headers=auth),
        lambda: client.get(f"/api/meetings/{mid}", headers=auth),
        lambda: client.post("/api/meetings", json={"title": "Retro"}, headers=auth),
        lambda: client.get("/api/meetings/no-such-meeting", headers=auth),
    ]


def _settle(ingest: SentryIngest, outbox: Path) -> None:
    # Everything queued is sent (the outbox empty: a send pass in progress holds its list
    # of entries), what the ingest kept is dropped, cycles are collected. urllib.parse
    # keeps the last 128 URLs it split (each Location header is a new one): bounded, and
    # not Mina's, so emptied rather than waited for.
    deadline = time.monotonic() + 30
    sentry_sdk.flush(timeout=10)
    while any(outbox.glob("*/*")) and time.monotonic() < deadline:
        sentry_sdk.flush(timeout=2)
    sentry_sdk.flush(timeout=10)  # the pass that found it empty has ended
    ingest.clear()
    urllib.parse.clear_cache()  # type: ignore[attr-defined]  # undocumented, in 3.11-3.13
    gc.collect()


def _counts() -> collections.Counter[str]:
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


@contextlib.contextmanager
def _stdout_to(path: Path) -> Iterator[None]:
    # A file with a descriptor, as a worker's stdout is (a pipe): the capture fixtures keep
    # every line in memory, which would be the test's own growth.
    previous = sys.stdout
    with path.open("w", encoding="utf-8") as out:
        sys.stdout = out
        try:
            configure_logging(Settings.from_env(), force=True)
            yield
        finally:
            sys.stdout = previous
            configure_logging(Settings.from_env(), force=True)  # off the file before it closes


# Known, open in issue 17: without the capturing thread keeping the outbox bound (branch
# h-bound, reverted this round), ~200 dicts of outbox bookkeeping outlive these requests.
@pytest.mark.xfail(reason="outbox bookkeeping grows with its backlog until the bound")
def test_requests_leave_nothing_behind(
    mina_logging: PipelineFactory, sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    mina_logging()  # rebuilds the pipeline after the test
    outbox = tmp_path / "sentry-outbox"  # MINA_SENTRY_OUTBOX, set by the suite's conftest
    with _stdout_to(tmp_path / "stdout.jsonl"):
        app = create_app(
            {
                "SENTRY_DSN": sentry_ingest.dsn,
                "SENTRY_TRACES_SAMPLE_RATE": "1.0",
                "SENTRY_PROFILES_SAMPLE_RATE": "0",
                "MINA_ENABLE_TEST_ROUTES": "1",
            }
        )
        _, token = make_user(str(tmp_path / "mina.sqlite3"), "ada")
        calls = _traffic(app.test_client(), token)
        for i in range(WARMUP):
            calls[i % len(calls)]()
        _settle(sentry_ingest, outbox)
        assert [] == sentry_ingest.errors

        before = _counts()
        tracemalloc.start()
        try:
            start = tracemalloc.take_snapshot()
            for i in range(REQUESTS):
                calls[i % len(calls)]()
            _settle(sentry_ingest, outbox)
            diff = tracemalloc.take_snapshot().compare_to(start, "filename")
        finally:
            tracemalloc.stop()
    new_bytes = sum(stat.size_diff for stat in diff)
    top = [f"{stat.traceback[0].filename}: {stat.size_diff:+,} B" for stat in diff[:5]]
    del start, diff  # tracemalloc's own objects, gone before the count
    gc.collect()
    grown = _counts() - before
    finished = (tmp_path / "stdout.jsonl").read_text().count('"event":"request.finished"')
    assert WARMUP + REQUESTS + 1 == finished  # the lines went to the file, not to memory
    assert {} == {kind: n for kind, n in grown.most_common(12) if n > MAX_NEW_OBJECTS}
    assert new_bytes <= MAX_NEW_BYTES, top


def _raised_shared_instances(source: str) -> list[tuple[int, str]]:
    # `raise NAME` where NAME is bound at module level to a call's result (an instance),
    # not to a class or an import: the same object raised again and again.
    tree = ast.parse(source)
    made = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    return [
        (node.lineno, node.exc.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Name) and node.exc.id in made
    ]


def test_no_module_raises_an_exception_made_at_import() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: raise {name}"
        for path in sorted((ROOT / "mina").rglob("*.py"))
        for line, name in _raised_shared_instances(path.read_text())
    ]

    assert [] == found


def test_the_check_finds_a_shared_instance() -> None:
    source = "_STOP: Final = StopIteration()\n\n\ndef f():\n    raise _STOP\n"

    assert [(5, "_STOP")] == _raised_shared_instances(source)
    assert [] == _raised_shared_instances(source.replace("raise _STOP", "raise StopIteration()"))
