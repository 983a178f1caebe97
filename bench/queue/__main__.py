"""``python -m bench.queue``: the task-queue candidates, measured the same way.

For each candidate and mode (``embedded``: a SQLite file, no server; ``redis``: a private
``redis-server`` on loopback, started here and stopped at the end), with one worker
process running one job at a time:

1. **throughput**: ``--jobs`` no-op jobs are enqueued while no worker runs, then a worker
   starts; jobs/s is their number over the time from the first start to the last end.
2. **latency**: with the worker idle, ``--latency-jobs`` no-op jobs are enqueued
   ``--spacing-ms`` apart; queue latency is a job's start minus its enqueue time.
3. **kill**: ``--kill-jobs`` jobs of ``--work-ms`` each are enqueued; once
   ``--kill-after`` have finished and one is running, the worker's whole process group
   gets SIGKILL (as the OOM killer or a lost host would), and a new worker starts.
   Counted: jobs never finished (lost), jobs finished more than once (duplicates),
   whether the job that was running when the worker died finished later, and the
   seconds from the restart until every job had finished.

Each execution is a row in a SQLite ledger (`bench.queue.jobs`), so the counts are what
ran, not what the queue reports. Redelivery timeouts (Celery's visibility timeout,
Dramatiq's heartbeat timeout, RQ's job timeout) are all ``--redeliver-s``.

::

    nice -n 15 python -m bench.queue                  # every installed candidate
    nice -n 15 python -m bench.queue --only huey      # cases whose name contains "huey"
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.queue import jobs

CASES = (
    ("huey", "embedded"),
    ("celery", "embedded"),
    ("dramatiq", "embedded"),
    ("mina", "embedded"),
    ("huey", "redis"),
    ("celery", "redis"),
    ("dramatiq", "redis"),
    ("rq", "redis"),
)
_MODULES = {
    "huey": "huey",
    "celery": "celery",
    "dramatiq": "dramatiq",
    "mina": "dramatiq",
    "rq": "rq",
}
_BIN = Path(sys.executable).parent


class Worker:
    """One worker command in its own process group, its output appended to a log."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=out, start_new_session=True
            )

    def kill(self) -> None:
        """SIGKILL the worker and every process it forked."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port, without persistence."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp)]
    argv += ["--save", "", "--appendonly", "no"]
    with (tmp / "redis.log").open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _flush(url: str) -> None:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"FLUSHALL\r\n")
        s.recv(64)


def _rows(ledger: Path, prefix: str) -> list[tuple[str, float, float, float | None]]:
    if not ledger.exists():
        return []
    with contextlib.closing(sqlite3.connect(ledger, timeout=30)) as conn:
        try:
            return conn.execute(
                "SELECT key, t_enq, t_start, t_end FROM runs WHERE key LIKE ?", (prefix + "-%",)
            ).fetchall()
        except sqlite3.OperationalError:  # the first job has not created the table yet
            return []


def _finished(rows: list[tuple[str, float, float, float | None]]) -> set[str]:
    return {key for key, _, _, end in rows if end is not None}


def _wait(ledger: Path, prefix: str, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_finished(_rows(ledger, prefix))) >= n:
            return True
        time.sleep(0.1)
    return False


def _produce(
    candidate: str, env: dict[str, str], n: int, work_ms: float, spacing_ms: float, prefix: str
) -> None:
    argv = [sys.executable, "-m", "bench.queue.produce", candidate]
    subprocess.run(
        [*argv, str(n), str(work_ms), str(spacing_ms), prefix], env=env, check=True, timeout=300
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_case(
    candidate: str, mode: str, url: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    """Run the three phases for one candidate in one mode; return what was measured."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-queue-{candidate}-{mode}-"))
    env = dict(
        os.environ,
        BENCH_QUEUE_DIR=str(tmp),
        BENCH_QUEUE_URL=url or "",
        BENCH_QUEUE_REDELIVER_S=str(args.redeliver_s),
    )
    env["dramatiq_worker_timeout"] = "100"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path.cwd()), env.get("PYTHONPATH")]))
    if url:
        _flush(url)
    os.environ["BENCH_QUEUE_DIR"] = str(tmp)
    jobs.connect()  # creates the ledger's table before any worker writes
    ledger = jobs.ledger_path()
    argv = _worker_argv(candidate, url)
    worker = Worker(argv, env, tmp / "worker.log")
    result: dict[str, Any] = {"candidate": candidate, "mode": mode}
    try:
        _produce(candidate, env, args.jobs, 0, 0, "tp")
        worker.start()
        if _wait(ledger, "tp", args.jobs, args.timeout):
            rows = _rows(ledger, "tp")
            span = max(r[3] for r in rows if r[3]) - min(r[2] for r in rows)
            result["jobs_per_s"] = round(args.jobs / span, 1)
        else:
            result["jobs_per_s"] = None
            result["tp_finished"] = len(_finished(_rows(ledger, "tp")))
        _produce(candidate, env, args.latency_jobs, 0, args.spacing_ms, "lat")
        _wait(ledger, "lat", args.latency_jobs, args.timeout)
        waits = [(start - enq) * 1000 for _, enq, start, end in _rows(ledger, "lat") if end]
        if waits:
            result["latency_p50_ms"] = round(statistics.median(waits), 1)
            result["latency_p99_ms"] = round(_pct(waits, 0.99), 1)
        result.update(_kill_phase(candidate, env, ledger, worker, args))
    finally:
        worker.kill()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def _kill_phase(
    candidate: str, env: dict[str, str], ledger: Path, worker: Worker, args: argparse.Namespace
) -> dict[str, Any]:
    _produce(candidate, env, args.kill_jobs, args.work_ms, 0, "kill")
    deadline = time.monotonic() + args.timeout
    in_flight: set[str] = set()
    while time.monotonic() < deadline:
        rows = _rows(ledger, "kill")
        in_flight = {key for key, _, _, end in rows if end is None}
        if len(_finished(rows)) >= args.kill_after and in_flight:
            break
        time.sleep(0.01)
    else:
        return {"kill": "never reached a running job"}
    worker.kill()
    worker.start()
    restarted = time.monotonic()
    done = _wait(ledger, "kill", args.kill_jobs, args.recover_timeout)
    recovery = round(time.monotonic() - restarted, 1) if done else None
    rows = _rows(ledger, "kill")
    finished = _finished(rows)
    runs = sum(1 for *_, end in rows if end is not None)
    return {
        "kill_jobs": args.kill_jobs,
        "lost": args.kill_jobs - len(finished),
        "duplicates": runs - len(finished),
        "in_flight_finished": bool(in_flight) and in_flight <= finished,
        "recovery_s": recovery,
    }


def _worker_argv(candidate: str, url: str | None) -> list[str]:
    # One worker process running one job at a time, for every candidate.
    return {
        # One consumer, one worker thread; polling from 10 ms up to 100 ms when idle.
        "huey": [
            str(_BIN / "huey_consumer"),
            "bench.queue.huey_app.huey",
            "-w",
            "1",
            "-k",
            "thread",
            "-d",
            "0.01",
            "-m",
            "0.1",
        ],
        # One prefork child, no gossip, mingle or heartbeat events.
        "celery": [
            str(_BIN / "celery"),
            "-A",
            "bench.queue.celery_app",
            "worker",
            "-c",
            "1",
            "-P",
            "prefork",
            "-Q",
            "bench",
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        # One worker process with one thread; idle wake-ups every 100 ms (default 1 s), set
        # by the environment (run_case): the command line has no option for it.
        "dramatiq": [
            str(_BIN / "dramatiq"),
            "bench.queue.dramatiq_app",
            "-p",
            "1",
            "-t",
            "1",
        ],
        # Dramatiq's worker again, on Mina's SQLite broker.
        "mina": [
            str(_BIN / "dramatiq"),
            "bench.queue.mina_app",
            "-p",
            "1",
            "-t",
            "1",
        ],
        # One worker (it forks a work horse per job) with its scheduler, which runs retries.
        "rq": [str(_BIN / "rq"), "worker", "-u", url or "", "--with-scheduler", "bench"],
    }[candidate]


def main() -> None:
    """Run the selected cases; print one JSON object per case and write them all."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="cases whose 'candidate-mode' contains this")
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--spacing-ms", type=float, default=20)
    parser.add_argument("--kill-jobs", type=int, default=40)
    parser.add_argument("--kill-after", type=int, default=10)
    parser.add_argument("--work-ms", type=float, default=100)
    parser.add_argument("--redeliver-s", type=float, default=5)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--recover-timeout", type=float, default=60)
    parser.add_argument("--keep", action="store_true", help="keep each case's tmp dir")
    parser.add_argument("--json", type=Path, default=Path("bench/results/queue.json"))
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop the workers and redis-server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cases = [(c, m) for c, m in CASES if args.only in f"{c}-{m}"]
    missing = {c for c, _ in cases if importlib.util.find_spec(_MODULES[c]) is None}
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        url = None
        if any(m == "redis" for _, m in cases):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-redis-")))
            url = stack.enter_context(redis_server(tmp))
        for candidate, mode in cases:
            if candidate in missing:
                result: dict[str, Any] = {
                    "candidate": candidate,
                    "mode": mode,
                    "skipped": "not installed",
                }
            else:
                try:
                    result = run_case(candidate, mode, url if mode == "redis" else None, args)
                except (subprocess.SubprocessError, OSError) as exc:  # the next case still runs
                    result = {"candidate": candidate, "mode": mode, "error": repr(exc)}
            print(json.dumps(result), flush=True)
            results.append(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
