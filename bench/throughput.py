"""Request throughput with the pipeline on and off: real gunicorn, a bounded load generator.

Two gunicorn servers run side by side on 127.0.0.1, both serving
``bench.app:create_bench_app()`` (Mina's app plus ``GET /bench/work``, which writes three
INFO lines; Mina adds its ``request.finished`` line, so four lines per request):

- **on**: ``LOG_LEVEL=INFO``: every line is built, redacted, written as JSON to stdout and
  recorded as a Sentry breadcrumb.
- **off**: ``LOG_LEVEL=CRITICAL``: the same app and the same Sentry set-up (client, Flask
  integration, scopes), but the INFO calls are filtered out by the bound logger before any
  processor runs. What differs is the logging pipeline and nothing else.

Both send Sentry to a local `mina.testing.SentryIngest` (no errors happen, so nothing but
sessions is sent), with tracing and profiling off so transactions do not blur the
comparison. stdout goes to ``/dev/null`` (a real write per line).

The load generator is Python threads, each with one keep-alive ``http.client`` connection,
sharing a fixed number of requests per burst, with a time cap. Bursts alternate between the
two servers (order swapped each round); the on/off ratio is the median over rounds of the
ratio of requests per second within the round. On a 2-core machine the generator and the
server share the CPU; the server runs one worker so the generator keeps the other core.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from mina.testing import SentryIngest

ROOT = Path(__file__).resolve().parent.parent
PATH = "/bench/work"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One gunicorn serving the bench app; stderr kept for errors, stdout to /dev/null or,
    given *stdout*, to that file (a file never makes the server wait, as a pipe can).
    ``MINA_DATABASE`` in *env* wins over the default, a file in the temporary directory."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        workers: int,
        threads: int,
        stdout: Path | None = None,
    ) -> None:
        self.name = name
        self.stdout = stdout.open("wb") if stdout is not None else subprocess.DEVNULL
        self.port = _free_port()
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        full = {
            **{
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("SENTRY_", "LOG_", "MINA_"))
            },
            **env,
            "MINA_BIND": f"127.0.0.1:{self.port}",
            "MINA_WORKERS": str(workers),
            "MINA_THREADS": str(threads),
            "MINA_DATABASE": env.get(
                "MINA_DATABASE",
                str(Path(tempfile.gettempdir()) / f"mina-bench-{self.port}.sqlite3"),
            ),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:mina.gunicorn_conf",
                "bench.app:create_bench_app()",
            ],
            env=full,
            cwd=ROOT,
            stdout=self.stdout,
            stderr=self.stderr,
        )

    def wait(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stderr.seek(0)
                    tail = self.stderr.read()[-2000:].decode("utf-8", "replace")
                    raise RuntimeError(f"gunicorn ({self.name}) did not start: {tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.stderr.close()
        if not isinstance(self.stdout, int):
            self.stdout.close()


def burst(port: int, requests: int, concurrency: int, cap_s: float) -> dict[str, float]:
    """Send *requests* GETs with *concurrency* keep-alive connections, at most *cap_s* seconds."""
    remaining = [requests]
    lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0]
    deadline = time.perf_counter() + cap_s
    start_gate = threading.Barrier(concurrency + 1)

    def worker(index: int) -> None:
        mine = latencies[index]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        start_gate.wait()
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
                conn.request("GET", PATH)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[0] += 1
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append(clock() - t0)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    done = sorted(x for chunk in latencies for x in chunk)
    p99 = done[min(len(done) - 1, int(len(done) * 0.99))] if done else float("nan")
    return {
        "requests": len(done),
        "errors": errors[0],
        "seconds": elapsed,
        "rps": len(done) / elapsed if elapsed else 0.0,
        "p99_ms": p99 * 1000,
        "p50_ms": (statistics.median(done) * 1000) if done else float("nan"),
    }


def run(
    rounds: int = 6,
    requests: int = 1500,
    concurrency: int = 4,
    workers: int = 1,
    threads: int = 4,
    cap_s: float = 30.0,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the on/off request benchmark; return its summary (medians over rounds)."""
    with SentryIngest() as ingest:
        common = {
            "SENTRY_DSN": ingest.dsn,
            "SENTRY_TRACES_SAMPLE_RATE": "0",
            "SENTRY_PROFILES_SAMPLE_RATE": "0",
            "SENTRY_ENVIRONMENT": "bench",
            "PYTHONUNBUFFERED": "1",
        }
        servers = {
            "on": Server("on", {**common, "LOG_LEVEL": "INFO"}, workers, threads),
            "off": Server("off", {**common, "LOG_LEVEL": "CRITICAL"}, workers, threads),
        }
        try:
            for server in servers.values():
                server.wait()
            for server in servers.values():  # warm-up: imports, first requests, caches
                burst(server.port, max(100, requests // 10), concurrency, cap_s)
            samples: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
            ratios: list[float] = []
            for index in range(rounds):
                order = ("on", "off") if index % 2 == 0 else ("off", "on")
                this = {}
                for name in order:
                    this[name] = burst(servers[name].port, requests, concurrency, cap_s)
                    samples[name].append(this[name])
                ratios.append(this["on"]["rps"] / this["off"]["rps"])
                if progress is not None:
                    progress(
                        f"throughput round {index + 1}/{rounds}: on {this['on']['rps']:.0f} rps,"
                        f" off {this['off']['rps']:.0f} rps"
                    )
                ingest.clear()
        finally:
            for server in servers.values():
                server.stop()

    def med(name: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[name])

    return {
        "on": {k: med("on", k) for k in ("rps", "p99_ms", "p50_ms")},
        "off": {k: med("off", k) for k in ("rps", "p99_ms", "p50_ms")},
        "errors": sum(s["errors"] for v in samples.values() for s in v),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "rounds": rounds,
        "requests_per_burst": requests,
        "concurrency": concurrency,
        "workers": workers,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.throughput [--rounds N] [--requests N] [--json PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.throughput")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--json", default="-")
    args = parser.parse_args(argv)
    result = run(
        args.rounds,
        args.requests,
        args.concurrency,
        args.workers,
        args.threads,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    text = json.dumps(result, indent=2)
    if args.json == "-":
        print(text)
    else:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
