"""SQLite under concurrent writes: ``POST /api/meetings`` against real gunicorn.

One gunicorn (2 workers x 4 threads by default, as ``make run``) serves Mina on 127.0.0.1
with a fresh database in a temporary directory. Before it starts, the benchmark creates
one user and API token per client. Python threads, each with one keep-alive
``http.client`` connection and its own token, share a fixed number of
``POST /api/meetings`` requests (a cap in seconds bounds the run); every request inserts
one row. Sentry is off and stdout goes to ``/dev/null``: what is measured is the request
path with its database writes, not the transport.

Reported: requests per second, p50 and p99 latency, errors (anything but 201), and
whether every 201 left exactly one row (``rows_ok``). Several rounds run against the same
server after a warm-up; the summary is the median over rounds.

``--baseline DIR`` also serves the ``mina`` package of another source tree (say
``git archive main | tar -x -C DIR``) with its own database, and alternates rounds between
the two (order swapped each round), so a shared, noisy machine affects both alike; the
before/after comparison is the ratio within the run.

::

    python -m bench.db_concurrency                       # 3 rounds x 3000 requests, 16 clients
    python -m bench.db_concurrency --baseline /tmp/mina-main --rounds 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

from mina import db

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/meetings"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tokens(database: Path, count: int) -> list[str]:
    db.initialize(database)
    with closing(db.connect(database)) as conn:
        return [db.create_token(conn, db.create_user(conn, f"bench{n}").id) for n in range(count)]


def _start(tree: Path, database: Path, workers: int, threads: int, stderr: Any) -> tuple[Any, int]:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "LOG_", "MINA_"))},
        "PYTHONPATH": str(tree),  # this tree's `mina` before the installed one
        "MINA_BIND": f"127.0.0.1:{port}",
        "MINA_WORKERS": str(workers),
        "MINA_THREADS": str(threads),
        "MINA_DATABASE": str(database),
        "SENTRY_ENVIRONMENT": "bench",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:mina.gunicorn_conf",
            "mina:create_app()",
        ],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                stderr.seek(0)
                tail = stderr.read()[-2000:].decode("utf-8", "replace")
                raise RuntimeError(f"gunicorn did not start: {tail}") from None
            time.sleep(0.1)


def burst(port: int, tokens: list[str], requests: int, cap_s: float) -> dict[str, Any]:
    """Send *requests* POSTs from one thread per token, at most *cap_s* seconds."""
    remaining = [requests]
    lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in tokens]
    errors: list[str] = []
    deadline = time.perf_counter() + cap_s
    gate = threading.Barrier(len(tokens) + 1)

    def client(index: int) -> None:
        headers = {
            "Authorization": f"Bearer {tokens[index]}",
            "Content-Type": "application/json",
        }
        body = json.dumps({"title": f"bench meeting {index}"}).encode()
        mine = latencies[index]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        gate.wait()
        clock = time.perf_counter
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            if clock() > deadline:
                break
            t0 = clock()
            try:
                conn.request("POST", PATH, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if response.status != 201:
                errors.append(f"{response.status} {answer[:120]!r}")
                continue
            mine.append(clock() - t0)
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    gate.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    done = sorted(x for mine in latencies for x in mine)

    def pct(q: float) -> float:
        return done[min(len(done) - 1, int(len(done) * q))] * 1000 if done else float("nan")

    return {
        "created": len(done),
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": elapsed,
        "rps": len(done) / elapsed if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": done[-1] * 1000 if done else float("nan"),
    }


def _rows(database: Path) -> int:
    with closing(sqlite3.connect(database)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM meetings").fetchone()[0])


class _Side:
    """One server under test: its source tree, database, tokens and results."""

    def __init__(self, tree: Path, tmp: Path, clients: int) -> None:
        self.tree = tree
        self.database = tmp / "mina.sqlite3"
        tmp.mkdir()
        self.tokens = _tokens(self.database, clients)
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self.process: Any = None
        self.port = 0
        self.samples: list[dict[str, Any]] = []
        self.rows_before = 0

    def start(self, workers: int, threads: int) -> None:
        self.process, self.port = _start(self.tree, self.database, workers, threads, self.stderr)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.stderr.close()

    def summary(self) -> dict[str, Any]:
        created = sum(s["created"] for s in self.samples)
        return {
            **{
                k: statistics.median(s[k] for s in self.samples)
                for k in ("rps", "p50_ms", "p99_ms")
            },
            "max_ms": max(s["max_ms"] for s in self.samples),
            "errors": sum(s["errors"] for s in self.samples),
            "first_errors": [e for s in self.samples for e in s["first_errors"]][:3],
            "rows_ok": _rows(self.database) - self.rows_before == created,
            "tree": str(self.tree),
            "rounds": self.samples,
        }


def run(
    rounds: int = 3,
    requests: int = 3000,
    clients: int = 16,
    workers: int = 2,
    threads: int = 4,
    cap_s: float = 60.0,
    baseline: Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the benchmark (against *baseline* too, interleaved); return medians per side."""
    trees = {"this": ROOT} if baseline is None else {"this": ROOT, "baseline": baseline}
    with tempfile.TemporaryDirectory(prefix="mina-dbbench-") as tmp:
        sides = {name: _Side(tree, Path(tmp) / name, clients) for name, tree in trees.items()}
        try:
            for side in sides.values():
                side.start(workers, threads)
            for side in sides.values():
                burst(side.port, side.tokens, max(200, requests // 10), cap_s)  # warm-up
                side.rows_before = _rows(side.database)
            for index in range(rounds):
                order = list(sides) if index % 2 == 0 else list(reversed(sides))
                for name in order:
                    sample = burst(sides[name].port, sides[name].tokens, requests, cap_s)
                    sides[name].samples.append(sample)
                    if progress is not None:
                        progress(
                            f"round {index + 1}/{rounds} {name}: {sample['rps']:.0f} req/s,"
                            f" p50 {sample['p50_ms']:.1f} ms, p99 {sample['p99_ms']:.1f} ms,"
                            f" {sample['errors']} errors"
                        )
            result = {name: side.summary() for name, side in sides.items()}
        finally:
            for side in sides.values():
                side.stop()
    return {
        **result,
        "requests_per_round": requests,
        "clients": clients,
        "workers": workers,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.db_concurrency [--rounds N] [--requests N] [--clients N] [--json P]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.db_concurrency")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--baseline", type=Path, default=None, help="another source tree")
    parser.add_argument("--json", default="-")
    args = parser.parse_args(argv)
    result = run(
        args.rounds,
        args.requests,
        args.clients,
        args.workers,
        args.threads,
        baseline=args.baseline,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    for name in ("this", "baseline"):
        if name in result:
            r = result[name]
            print(
                f"{name:8s} POST {PATH}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.1f} ms,"
                f" p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms,"
                f" {r['errors']} errors, rows ok: {r['rows_ok']}",
                file=sys.stderr,
            )
    text = json.dumps(result, indent=2)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
