"""The app the request benchmarks serve: Mina's app plus two routes of their own.

``GET /bench/work`` writes three lines; ``GET /bench/fail`` logs one line and raises
(an unhandled exception: a 500 and a Sentry event). They live here, not among Mina's
production routes. gunicorn loads it with
``bench.app:create_bench_app()`` from the repository root.
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
    """Log one line, then raise: Flask answers 500 and Sentry gets the exception."""
    _log.info("fail.started", kind="bench")
    raise RuntimeError("bench.fail: an unhandled exception, on purpose")


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
    """Return Mina's app (`mina.create_app`) with ``GET /bench/work`` and ``/bench/fail``."""
    app = create_app()
    app.add_url_rule("/bench/work", "bench_work", work)
    app.add_url_rule("/bench/fail", "bench_fail", fail)
    app.add_url_rule("/bench/objects", "bench_objects", objects)
    return app
