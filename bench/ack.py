"""What "acknowledged means durable" costs the calling thread.

::

    python -m bench.ack [--calls 2000] [--rounds 3]

Times, in one process with Mina's Sentry and an outbox in a temporary directory (no DSN:
no sender competes), the same handled ZeroDivisionError captured two ways, interleaved
per round:

- ``durable``: ``sentry_sdk.capture_exception()``: serialised, redacted and written into
  the outbox before the id is returned (on the calling thread);
- ``deferred``: the same event logged with ``log.error(..., exc_info=True)``: the calling
  thread takes the scope's part and queues the rest for the event worker (stdout lines go
  to ``/dev/null``).

Prints p50 and p99 per call in milliseconds and the ratio durable / deferred of the
medians. Compare ratios, not machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.ack")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import sentry_sdk
    import structlog

    from mina.logging_config import configure_logging
    from mina.observability.sentry import close_sentry, init_sentry
    from mina.settings import Settings

    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    with tempfile.TemporaryDirectory(prefix="mina-ack-") as work:
        os.dup2(devnull, 1)  # the pipeline's lines: not what is measured
        try:
            settings = replace(
                Settings.from_env(),
                sentry_dsn=None,
                sentry_outbox=Path(work) / "outbox",
                storm_budget=0,
                traces_sample_rate=0.0,
                profiles_sample_rate=0.0,
            )
            init_sentry(settings, configure_logging(settings))
            log = structlog.get_logger("bench.ack")
            times: dict[str, list[float]] = {"durable": [], "deferred": []}
            for _ in range(args.rounds):
                for name in ("durable", "deferred"):
                    for _ in range(args.calls):
                        try:
                            1 / 0  # noqa: B018 -- the event's exception
                        except ZeroDivisionError:
                            start = time.perf_counter()
                            if name == "durable":
                                sentry_sdk.capture_exception()
                            else:
                                log.error("bench.failed", exc_info=True)
                            times[name].append(time.perf_counter() - start)
                    sentry_sdk.flush(timeout=30)  # the worker's queue is empty between runs
            close_sentry()
        finally:
            os.dup2(saved, 1)
    for name, values in times.items():
        print(
            f"{name:<9} p50 {statistics.median(values) * 1000:.3f} ms"
            f"  p99 {_percentile(values, 0.99) * 1000:.3f} ms  ({len(values)} calls)"
        )
    ratio = statistics.median(times["durable"]) / statistics.median(times["deferred"])
    print(f"ratio durable/deferred (p50): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
