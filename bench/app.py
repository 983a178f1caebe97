"""The app the benchmarks serve: Mina's app plus a route that writes three lines and one
that logs the same error every time.

The route lives here, not among Mina's production routes. gunicorn loads it with
``bench.app:create_bench_app()`` from the repository root.
"""

from __future__ import annotations

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


def create_bench_app() -> flask.Flask:
    """Return Mina's app (`mina.create_app`) with ``GET /bench/work`` and
    ``GET /bench/fail`` added."""
    app = create_app()
    app.add_url_rule("/bench/work", "bench_work", work)
    app.add_url_rule("/bench/fail", "bench_fail", fail)
    return app
