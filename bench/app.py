"""The app the benchmarks serve: Mina's app plus routes of their own.

``GET /bench/work`` writes three lines; ``GET /bench/fail`` logs the same handled error on
every call (a storm's copy); ``GET /bench/raise`` logs one line and raises (an unhandled
exception: a 500 and a Sentry event); ``GET /bench/objects`` counts the worker's objects
(`bench.soak`). They live here, not among Mina's production routes. gunicorn loads the app
with ``bench.app:create_bench_app()`` from the repository root.
"""

from __future__ import annotations

import collections
import gc
import tracemalloc

import flask
import structlog

from mina import create_app

__all__ = ["create_bench_app"]

_log = structlog.get_logger("bench.work")


def work() -> flask.Response:
    """Write three log lines with a few keys each, answer a small JSON body."""
    _log.info("work.started", items=3, kind="bench")
    total = sum(i * i for i in range(200))
    _log.info("work.step", step=1, total=total)
    _log.info("work.finished", items=3, ok=True)
    return flask.jsonify(ok=True, total=total)


def fail() -> flask.Response:
    """Log one handled error, the same one (type, place) on every call: a storm's copy."""
    try:
        raise ValueError("the same failure")
    except ValueError:
        _log.error("bench.failed", exc_info=True)
    return flask.jsonify(ok=False)


def unhandled() -> flask.Response:
    """Log one line, then raise: Flask answers 500 and Sentry gets the exception."""
    _log.info("raise.started", kind="bench")
    raise RuntimeError("bench.raise: an unhandled exception, on purpose")


def objects() -> flask.Response:
    """The objects the garbage collector tracks in this worker, counted by type (the 40
    most numerous), and under ``PYTHONTRACEMALLOC`` the bytes Python has allocated
    (``_traced_bytes``): what tells a growing heap from a growing RSS."""
    gc.collect()
    counts: dict[str, int] = dict(
        collections.Counter(type(o).__qualname__ for o in gc.get_objects()).most_common(40)
    )
    if tracemalloc.is_tracing():
        counts["_traced_bytes"] = tracemalloc.get_traced_memory()[0]
    return flask.jsonify(counts)


def create_bench_app() -> flask.Flask:
    """Return Mina's app (`mina.create_app`) with the four ``/bench/`` routes added."""
    app = create_app()
    app.add_url_rule("/bench/work", "bench_work", work)
    app.add_url_rule("/bench/fail", "bench_fail", fail)
    app.add_url_rule("/bench/raise", "bench_raise", unhandled)
    app.add_url_rule("/bench/objects", "bench_objects", objects)
    return app
