"""``python -m bench.stalled_stdout``: real gunicorn whose stdout nobody reads.

The situation of ``gunicorn ... | sleep 3600``: stdout is a pipe that is never read.
Mina is served by gunicorn (2 workers x 4 threads, Mina's gunicorn settings) with its
stdout on such a pipe; 4 client threads send a fixed number of ``GET /healthz``
requests, each allowed ``--timeout`` seconds. Then the pipe is read at last, the server
stopped, and every line it wrote parsed. One table::

    answered / timed out, p50 / p99 latency of the answered, the last /healthz body,
    lines written, lines dropped (the sum of log.dropped), lines that did not parse

``--source DIR`` runs another checkout's ``mina`` (for a before/after comparison), and
``--env NAME=VALUE`` passes settings (``MINA_LOG_WHEN_FULL=block``, say).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float) -> tuple[float | None, Any]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except OSError:
        return None, None
    return (time.perf_counter() - started) * 1000, body


def run(requests: int, timeout: float, source: str | None, env: dict[str, str]) -> dict[str, Any]:
    """Serve Mina with an unread stdout, send *requests*; return what was seen."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    path = os.pathsep.join(p for p in (source, str(ROOT)) if p)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config=python:mina.gunicorn_conf",
            "mina:create_app()",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=source or ROOT,
        env={**os.environ, "PYTHONPATH": path, "MINA_BIND": f"127.0.0.1:{port}", **env},
    )
    stderr = bytearray()
    assert process.stderr is not None and process.stdout is not None
    err_reader = threading.Thread(target=lambda: stderr.extend(process.stderr.read()))  # type: ignore[union-attr]
    err_reader.start()
    try:
        for _ in range(200):
            if _get(url, 1)[0] is not None:
                break
            time.sleep(0.1)
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: _get(url, timeout), range(requests)))
        last = _get(url, timeout)[1]
    finally:
        out = bytearray()
        out_reader = threading.Thread(target=lambda: out.extend(process.stdout.read()))  # type: ignore[union-attr]
        out_reader.start()  # read at last: what was buffered drains
        time.sleep(2)
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out_reader.join(60)
        err_reader.join(60)
    parsed, bad = [], 0
    for line in out.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            bad += 1
    latencies = sorted(ms for ms, _ in results if ms is not None)
    return {
        "answered": len(latencies),
        "timed_out": requests - len(latencies),
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "last_healthz": last,
        "lines_written": len(parsed),
        "lines_dropped": sum(
            line.get("dropped", 0) for line in parsed if line.get("event") == "log.dropped"
        ),
        "lines_malformed": bad,
        "stderr_lines": len(stderr.splitlines()),
    }


def main() -> None:
    """Parse the arguments, run once, print one JSON object and a table row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--source", help="another checkout whose mina to run")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    result = run(args.requests, args.timeout, args.source, env)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
