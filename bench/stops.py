"""``python -m bench.stops``: how long a stop of ``mina serve`` takes after errors.

Each trial starts ``mina serve`` (gunicorn, 2 workers x 4 threads, Mina's settings) in
its own process group, calls ``/api/test-sentry-error`` a few times, and stops it the
way a user does: SIGTERM to the master (systemd, ``docker stop``) or Ctrl-C (SIGINT to
the whole process group, master and workers at once). It reports how long the stop took
and whether gunicorn had to SIGKILL a worker. Trials vary:

- Sentry: none (no DSN: the outbox keeps events), a healthy local ingest, or one that
  accepts and never answers (the outbox's sender mid-send at the stop);
- profiling (traces and profiles sampled at 1.0, continuous profiling) or not;
- load: CPU-bound busy loops on every core plus requests in flight at the stop;
- the worker: Mina's (`mina.gunicorn_worker`) or gunicorn's stock ``gthread``
  (``--worker gthread``, the setting before it).

One row per combination: stops, median / max seconds, stops that ended in a SIGKILL.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mina.testing import SentryIngest
from tests.support import ROOT, free_port, wait_http

#: gunicorn's line when a worker outlived the graceful timeout.
SIGKILL_LINE = "was sent SIGKILL"


def _busy(stop: Any) -> None:
    while not stop.is_set():
        sum(range(10_000))


@contextmanager
def cpu_load(enabled: bool) -> Iterator[None]:
    """Busy loops on every core while the block runs (when *enabled*)."""
    if not enabled:
        yield
        return
    stop = multiprocessing.Event()
    procs = [
        multiprocessing.Process(target=_busy, args=(stop,)) for _ in range(os.cpu_count() or 2)
    ]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=5)


def _get(url: str, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
    except OSError:
        pass


def stop_once(
    directory: Path,
    worker: str,
    how: str,
    dsn: str | None,
    profiling: bool,
    in_flight: bool,
    errors: int,
) -> dict[str, Any]:
    """One start, *errors* calls of the test route, one stop; what the stop took."""
    port = free_port()
    env = {
        **os.environ,
        "MINA_BIND": f"127.0.0.1:{port}",
        "MINA_DATABASE": str(directory / "mina.sqlite3"),
        "MINA_SENTRY_OUTBOX": str(directory / "outbox"),
        "SENTRY_ENVIRONMENT": "development",
        "LOG_FORMAT": "json",
        "SENTRY_TRACES_SAMPLE_RATE": "1.0" if profiling else "0",
        "SENTRY_PROFILES_SAMPLE_RATE": "1.0" if profiling else "0",
    }
    env.pop("SENTRY_DSN", None)
    if worker == "gthread":  # gunicorn applies these after the configuration file
        env["GUNICORN_CMD_ARGS"] = "--worker-class gthread"
    if dsn:
        env["SENTRY_DSN"] = dsn
    out_path = directory / "output.log"
    with out_path.open("wb") as out:
        return _stop(out, out_path, env, port, how, in_flight, errors)


def _stop(
    out: Any,
    out_path: Path,
    env: dict[str, str],
    port: int,
    how: str,
    in_flight: bool,
    errors: int,
) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mina", "serve"],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: Ctrl-C reaches master and workers
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz", timeout=30)
        for _ in range(errors):
            _get(f"{base}/api/test-sentry-error", 10)
        flight = [
            threading.Thread(target=_get, args=(f"{base}/api/test-sentry-error", 30))
            for _ in range(8 if in_flight else 0)
        ]
        for thread in flight:
            thread.start()
        started = time.monotonic()
        if how == "int":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        took = time.monotonic() - started
        for thread in flight:
            thread.join(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    output = out_path.read_text(errors="replace")
    return {
        "seconds": round(took, 2),
        "sigkill": SIGKILL_LINE in output,
        "returncode": process.returncode,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the trials; print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=5, help="stops per combination")
    parser.add_argument("--errors", type=int, default=3, help="test-route calls before a stop")
    parser.add_argument("--worker", default="mina", choices=["mina", "gthread"])
    parser.add_argument("--how", default="term,int")
    parser.add_argument("--sentry", default="none,healthy,hung")
    parser.add_argument("--profiling", default="off,on")
    parser.add_argument("--load", default="off,on")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    with SentryIngest() as healthy, SentryIngest() as hung:
        hung.respond_with(hang=True)
        dsns = {"none": None, "healthy": healthy.dsn, "hung": hung.dsn}
        for how, sentry, profiling, load in itertools.product(
            args.how.split(","),
            args.sentry.split(","),
            args.profiling.split(","),
            args.load.split(","),
        ):
            trials = []
            with cpu_load(load == "on"):
                for _ in range(args.stops):
                    with tempfile.TemporaryDirectory(prefix="mina-stop-") as scratch:
                        trials.append(
                            stop_once(
                                Path(scratch),
                                args.worker,
                                how,
                                dsns[sentry],
                                profiling == "on",
                                load == "on",
                                args.errors,
                            )
                        )
            seconds = [t["seconds"] for t in trials]
            row = {
                "worker": args.worker,
                "how": how,
                "sentry": sentry,
                "profiling": profiling,
                "load": load,
                "stops": len(trials),
                "median_s": statistics.median(seconds),
                "max_s": max(seconds),
                "sigkill": sum(t["sigkill"] for t in trials),
                "trials": trials,
            }
            rows.append(row)
            print(
                f"{args.worker:<8} {how:<5} sentry={sentry:<8} profiling={profiling:<4}"
                f" load={load:<4}"
                f" stops={row['stops']:<3} median={row['median_s']:>6.2f}s"
                f" max={row['max_s']:>6.2f}s sigkill={row['sigkill']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
